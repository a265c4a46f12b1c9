package hac

import (
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"testing"
)

// Every table entry brackets its power of ten: T·2^e2 ≤ 10^q < (T+1)·2^e2,
// with T of exactly 128 bits.
func TestWidePowers(t *testing.T) {
	table := widePowers()
	for q := wideQMin; q <= wideQMax; q++ {
		p := table[q-wideQMin]
		if p.hi>>63 != 1 {
			t.Fatalf("q = %d: T's top bit is not set: %x%016x", q, p.hi, p.lo)
		}
		tt := new(big.Int).Lsh(new(big.Int).SetUint64(p.hi), 64)
		tt.Or(tt, new(big.Int).SetUint64(p.lo))
		scale := new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), uint(max(p.e2, -p.e2))))
		if p.e2 < 0 {
			scale.Inv(scale)
		}
		low := new(big.Rat).Mul(new(big.Rat).SetInt(tt), scale)
		high := new(big.Rat).Mul(new(big.Rat).SetInt(new(big.Int).Add(tt, big.NewInt(1))), scale)
		pow := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(max(q, -q))), nil))
		if q < 0 {
			pow.Inv(pow)
		}
		if low.Cmp(pow) > 0 || pow.Cmp(high) >= 0 {
			t.Fatalf("q = %d: 10^q outside [T, T+1)·2^%d", q, p.e2)
		}
	}
}

// checkWide: where wideDecimal answers, it is strconv.ParseFloat's answer
// bit for bit; it reports whether it answered.
func checkWide(t *testing.T, w uint64, q int) bool {
	t.Helper()
	got, ok := wideDecimal(w, q, q%2 == 0)
	if !ok {
		return false
	}
	s := strconv.FormatUint(w, 10) + "e" + strconv.Itoa(q)
	want, err := strconv.ParseFloat(s, 64)
	if q%2 == 0 {
		want = -want
	}
	if err != nil || math.Float64bits(got) != math.Float64bits(want) {
		t.Fatalf("wideDecimal(%s) = %v (%x), strconv %v (%x) %v", s, got, math.Float64bits(got), want, math.Float64bits(want), err)
	}
	return true
}

// Random mantissas of 1–19 digits at every power of ten in the table, the
// digits of random float64s printed to 16–19 places, and the numbers nearest
// to halfway points (and exact ties, where they have few enough digits).
func TestWideDecimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	answered, tried := 0, 0
	try := func(w uint64, q int) {
		tried++
		if checkWide(t, w, q) {
			answered++
		}
	}
	for q := wideQMin; q <= wideQMax; q++ {
		for range 200 {
			digits := 1 + rng.IntN(19)
			w := rng.Uint64N(pow10u(digits)-pow10u(digits-1)) + pow10u(digits-1)
			try(w, q)
		}
	}
	for range 200000 {
		x := math.Float64frombits(rng.Uint64() &^ (1 << 63))
		if math.IsInf(x, 0) || math.IsNaN(x) {
			continue
		}
		digits := 16 + rng.IntN(4)
		w, q := decimalDigits(strconv.FormatFloat(x, 'e', digits-1, 64))
		try(w, q)
	}
	// Halfway points between neighbouring float64s: cut to 19 digits
	// (just below), and one unit up (just above).
	for range 100000 {
		x := math.Float64frombits(rng.Uint64N(0x7fe0000000000000) + 1<<52)
		mid := new(big.Float).SetPrec(2000).SetFloat64(x)
		mid.Add(mid, new(big.Float).SetFloat64(math.Nextafter(x, math.Inf(1))))
		mid.Quo(mid, big.NewFloat(2))
		w, q := decimalDigits(mid.Text('e', 18))
		try(w, q)
		try(w+1, q)
		try(w-1, q)
	}
	// Exact ties: integers halfway between float64s of 2⁵³…2⁶³.
	for k := 53; k < 63; k++ {
		for range 2000 {
			ulp := uint64(1) << (k - 52)
			x := (uint64(1)<<k + rng.Uint64N(uint64(1)<<k)) &^ (ulp - 1)
			tie := x + ulp/2
			if tie >= 1e19 {
				continue
			}
			try(tie, 0)
			try(tie/10, 1) // same value where tie ends in 0
		}
	}
	t.Logf("wideDecimal answered %d of %d", answered, tried)
	if answered < tried*9/10 {
		t.Errorf("wideDecimal answered only %d of %d", answered, tried)
	}
}

func pow10u(n int) uint64 {
	p := uint64(1)
	for range n {
		p *= 10
	}
	return p
}

// decimalDigits splits "d.ddde±x" into its digits as an integer (at most
// 19 of them) and the power of ten.
func decimalDigits(s string) (w uint64, q int) {
	i := 0
	for ; s[i] != 'e'; i++ {
		if s[i] != '.' {
			w = w*10 + uint64(s[i]-'0')
			q--
		}
	}
	exp, _ := strconv.Atoi(s[i+1:])
	return w, q + 1 + exp
}

func BenchmarkParseNumber(b *testing.B) {
	nums := [][]byte{[]byte("-0.02984333860556883"), []byte("0.013633667312631879"), []byte("0.052310531492795354")}
	widePowers()
	b.ResetTimer()
	for i := range b.N {
		if _, _, ok := parseNumber(nums[i%len(nums)], 0); !ok {
			b.Fatal("not parsed")
		}
	}
}
