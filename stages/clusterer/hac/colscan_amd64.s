#include "textflag.h"

// The NN-chain's column loops (see colscan.go for the Go reference), each
// prefetching the element it will read 16 positions later: the addresses
// depend on off[active[k]], which no hardware prefetcher predicts. Floating
// point is scalar SSE2 in the Go loops' order, without fused multiply-adds,
// so the results are theirs bit for bit.

// func colMinAsm(d *float64, off *int, active *int32, n int, x int, cur float64) (best float64, pos int)
TEXT ·colMinAsm(SB), NOSPLIT, $0-64
	MOVQ d+0(FP), SI
	MOVQ off+8(FP), DI
	MOVQ active+16(FP), R8
	MOVQ n+24(FP), CX
	MOVQ x+32(FP), R9
	MOVSD cur+40(FP), X0
	MOVQ $-1, AX
	XORQ BX, BX
	MOVQ CX, R12
	SUBQ $16, R12
loop:
	CMPQ BX, CX
	JGE done
	CMPQ BX, R12
	JGE noprefetch
	MOVLQSX 64(R8)(BX*4), R10
	MOVQ (DI)(R10*8), R11
	ADDQ R9, R11
	PREFETCHT0 (SI)(R11*8)
noprefetch:
	MOVLQSX (R8)(BX*4), R10
	MOVQ (DI)(R10*8), R11
	ADDQ R9, R11
	MOVSD (SI)(R11*8), X1
	UCOMISD X1, X0 // v < cur? (NaN is not: unordered takes JBE)
	JBE next
	MOVSD X1, X0
	MOVQ BX, AX
next:
	INCQ BX
	JMP loop
done:
	MOVSD X0, best+48(FP)
	MOVQ AX, pos+56(FP)
	RET

// func averageColsAsm(d *float64, off *int, active *int32, n int, x, y int, fx, fy, fxy float64)
TEXT ·averageColsAsm(SB), NOSPLIT, $0-72
	MOVQ d+0(FP), SI
	MOVQ off+8(FP), DI
	MOVQ active+16(FP), R8
	MOVQ n+24(FP), CX
	MOVQ x+32(FP), R9
	MOVQ y+40(FP), R13
	MOVSD fx+48(FP), X2
	MOVSD fy+56(FP), X3
	MOVSD fxy+64(FP), X4
	XORQ BX, BX
	MOVQ CX, R12
	SUBQ $16, R12
aloop:
	CMPQ BX, CX
	JGE adone
	CMPQ BX, R12
	JGE anoprefetch
	MOVLQSX 64(R8)(BX*4), R10
	MOVQ (DI)(R10*8), R11
	LEAQ (R11)(R9*1), DX
	PREFETCHT0 (SI)(DX*8)
	ADDQ R13, R11
	PREFETCHT0 (SI)(R11*8)
anoprefetch:
	MOVLQSX (R8)(BX*4), R10
	MOVQ (DI)(R10*8), R11
	LEAQ (R11)(R9*1), DX
	ADDQ R13, R11
	MOVSD (SI)(DX*8), X0
	MULSD X2, X0
	MOVSD (SI)(R11*8), X1
	MULSD X3, X1
	ADDSD X1, X0
	DIVSD X4, X0
	MOVSD X0, (SI)(R11*8)
	INCQ BX
	JMP aloop
adone:
	RET

// func averageRowColAsm(d *float64, off *int, active *int32, n int, ox, y int, fx, fy, fxy float64)
TEXT ·averageRowColAsm(SB), NOSPLIT, $0-72
	MOVQ d+0(FP), SI
	MOVQ off+8(FP), DI
	MOVQ active+16(FP), R8
	MOVQ n+24(FP), CX
	MOVQ ox+32(FP), R9
	MOVQ y+40(FP), R13
	MOVSD fx+48(FP), X2
	MOVSD fy+56(FP), X3
	MOVSD fxy+64(FP), X4
	XORQ BX, BX
	MOVQ CX, R12
	SUBQ $16, R12
bloop:
	CMPQ BX, CX
	JGE bdone
	CMPQ BX, R12
	JGE bnoprefetch
	MOVLQSX 64(R8)(BX*4), R10
	MOVQ (DI)(R10*8), R11
	ADDQ R13, R11
	PREFETCHT0 (SI)(R11*8)
bnoprefetch:
	MOVLQSX (R8)(BX*4), R10
	LEAQ (R9)(R10*1), DX
	MOVQ (DI)(R10*8), R11
	ADDQ R13, R11
	MOVSD (SI)(DX*8), X0
	MULSD X2, X0
	MOVSD (SI)(R11*8), X1
	MULSD X3, X1
	ADDSD X1, X0
	DIVSD X4, X0
	MOVSD X0, (SI)(R11*8)
	INCQ BX
	JMP bloop
bdone:
	RET
