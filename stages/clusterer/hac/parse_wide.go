package hac

import (
	"math"
	"math/big"
	"math/bits"
	"sync"
)

// Most fingerprint components that Python prints have 17 significant
// digits: more than 2⁵³, so parseNumber's exact fast path (Clinger's) does
// not take them, and strconv.ParseFloat would scan each number a second
// time. wideDecimal rounds such a number from the digits parseNumber has
// already read: w·10^q lies in [P, P+w)·2^e, where P = w·T and T is the
// 128-bit floor of 10^q's significand (so T ≤ the exact value < T+1). Where
// both ends of that interval round to the same float64 — all but numbers
// within 2⁻⁷⁰ or so of a halfway point — that float64 is the correctly
// rounded value; elsewhere (and for subnormal or overflowing results) ok
// is false and the caller asks strconv. The table is computed exactly with
// math/big the first time it is needed.

// wideQMin, wideQMax bound the powers of ten in the table: outside them
// any 1–19 digit mantissa is subnormal, zero or infinite anyway.
const (
	wideQMin = -342
	wideQMax = 308
)

// pow10Wide is ⌊10^q's significand⌋ as 128 bits (hi:lo, top bit set) and
// its binary exponent: 10^q ∈ [T, T+1)·2^e2.
type pow10Wide struct {
	hi, lo uint64
	e2     int
}

var (
	wideOnce  sync.Once
	wideTable []pow10Wide
)

func widePowers() []pow10Wide {
	wideOnce.Do(func() {
		wideTable = make([]pow10Wide, wideQMax-wideQMin+1)
		mask := new(big.Int).SetUint64(math.MaxUint64)
		five := big.NewInt(5)
		for q := wideQMin; q <= wideQMax; q++ {
			t, e2 := floorPow10(five, q)
			wideTable[q-wideQMin] = pow10Wide{
				hi: new(big.Int).Rsh(t, 64).Uint64(),
				lo: new(big.Int).And(t, mask).Uint64(),
				e2: e2,
			}
		}
	})
	return wideTable
}

// floorPow10 is T in [2¹²⁷, 2¹²⁸) and e2 with 10^q ∈ [T, T+1)·2^e2.
func floorPow10(five *big.Int, q int) (*big.Int, int) {
	p := new(big.Int).Exp(five, big.NewInt(int64(max(q, -q))), nil) // 5^|q|
	if q >= 0 {
		// 10^q = 5^q·2^q: 5^q's top 128 bits, truncated.
		shift := p.BitLen() - 128
		if shift >= 0 {
			return p.Rsh(p, uint(shift)), shift + q
		}
		return p.Lsh(p, uint(-shift)), shift + q
	}
	// 10^q = 2^q / 5^|q| = ⌊2^b / 5^|q|⌋·2^(q−b) with b such that the
	// quotient has 128 bits (5^|q| is no power of two, so it never
	// reaches 2¹²⁸).
	b := p.BitLen() + 127
	t := new(big.Int).Lsh(big.NewInt(1), uint(b))
	return t.Quo(t, p), q - b
}

// wideDecimal is w·10^q (w > 0, negated if neg), correctly rounded; ok is
// false where it cannot tell the rounding or the result is not a normal
// float64.
func wideDecimal(w uint64, q int, neg bool) (v float64, ok bool) {
	if w == 0 || q < wideQMin || q > wideQMax {
		return 0, false
	}
	p := widePowers()[q-wideQMin]
	lz := bits.LeadingZeros64(w)
	w <<= lz
	// P = w·T, 192 bits.
	a1, a0 := bits.Mul64(w, p.lo)
	b1, b0 := bits.Mul64(w, p.hi)
	mid, carry := bits.Add64(a1, b0, 0)
	hi := b1 + carry
	lo := a0
	e2 := p.e2 - lz
	low, okLow := round192(hi, mid, lo, e2)
	// P + w: the interval's (excluded) upper end; it never overflows 192 bits.
	lo2, c := bits.Add64(lo, w, 0)
	mid2, c := bits.Add64(mid, 0, c)
	high, okHigh := round192(hi+c, mid2, lo2, e2)
	if !okLow || !okHigh || low != high {
		return 0, false
	}
	if neg {
		low |= 1 << 63
	}
	return math.Float64frombits(low), true
}

// round192 is the float64 bits of (hi:mid:lo)·2^e2, rounded to nearest,
// ties to even, for a 192-bit integer with bit 190 or 191 its top bit; ok is
// false where the result is not a normal float64.
func round192(hi, mid, lo uint64, e2 int) (uint64, bool) {
	top := 190 + int(hi>>63) // position of the leading one
	shift := top - 52 - 128  // the 53-bit significand is hi >> shift (shift is 10 or 11)
	mant := hi >> shift
	half := uint64(1) << (shift - 1)
	rest := hi & (half<<1 - 1) // the bits of hi below the significand
	above := rest > half || rest == half && (mid|lo != 0)
	tie := rest == half && mid|lo == 0
	if above || tie && mant&1 == 1 {
		mant++
		if mant == 1<<53 {
			mant >>= 1
			top++
		}
	}
	exp := top + e2 + 1023 // biased exponent of the leading one
	if exp < 1 || exp > 2046 {
		return 0, false
	}
	return uint64(exp)<<52 | mant&(1<<52-1), true
}
