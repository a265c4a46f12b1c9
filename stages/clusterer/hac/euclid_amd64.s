#include "textflag.h"

// func euclidRowAVX2(dst, gv, sqj *float64, n int, sqi, ratio, maxNorm, minNorm float64) bool
//
// For k in 0..n-1 (n a multiple of 4): s = sqi + sqj[k], d2 = s − (gv[k]+gv[k]),
// dst[k] = √d2, in the Go loop's order (gv+gv is 2·gv exactly; no fused
// multiply-add), so each root is the Go loop's bit for bit. Returns false if
// any lane has s == 0, !(d2 ≥ ratio·s), s > maxNorm or s < minNorm.
TEXT ·euclidRowAVX2(SB), NOSPLIT, $0-65
	MOVQ dst+0(FP), DI
	MOVQ gv+8(FP), SI
	MOVQ sqj+16(FP), DX
	MOVQ n+24(FP), CX
	VBROADCASTSD sqi+32(FP), Y0
	VBROADCASTSD ratio+40(FP), Y1
	VBROADCASTSD maxNorm+48(FP), Y2
	VBROADCASTSD minNorm+56(FP), Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y15, Y15, Y15
	XORQ BX, BX
loop:
	CMPQ BX, CX
	JGE done
	VMOVUPD (SI)(BX*8), Y5
	VMOVUPD (DX)(BX*8), Y6
	VADDPD Y6, Y0, Y6     // s = sqi + sqj
	VADDPD Y5, Y5, Y7     // 2·gv
	VSUBPD Y7, Y6, Y8     // d2 = s − 2·gv
	VMULPD Y1, Y6, Y9     // ratio·s
	VCMPPD $0x19, Y9, Y8, Y10 // !(d2 ≥ ratio·s), NaN included
	VORPD Y10, Y15, Y15
	VCMPPD $0x00, Y4, Y6, Y11 // s == 0
	VORPD Y11, Y15, Y15
	VCMPPD $0x1E, Y2, Y6, Y12 // s > maxNorm
	VORPD Y12, Y15, Y15
	VCMPPD $0x11, Y3, Y6, Y13 // s < minNorm
	VORPD Y13, Y15, Y15
	VSQRTPD Y8, Y14
	VMOVUPD Y14, (DI)(BX*8)
	ADDQ $4, BX
	JMP loop
done:
	VPTEST Y15, Y15
	SETEQ AX
	VZEROUPPER
	MOVB AX, ret+64(FP)
	RET
