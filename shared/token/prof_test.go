package token

import "testing"

func BenchmarkPrepare(b *testing.B) {
	c0 := testClaims(t0)
	for b.Loop() {
		c := c0
		prepare(&c)
	}
}
func BenchmarkAppendClaims(b *testing.B) {
	c := testClaims(t0)
	w, _ := prepare(&c)
	b.ReportAllocs()
	for b.Loop() {
		appendClaims(make([]byte, 0, claimsSizeHint(&c)), &c, w)
	}
}
