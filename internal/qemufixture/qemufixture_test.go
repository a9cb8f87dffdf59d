package qemufixture

import (
	"encoding/hex"
	"testing"
)

// FIPS-197 appendix A.1: the last round key of 2b7e1516...
func TestAES128Schedule(t *testing.T) {
	key, _ := hex.DecodeString("2b7e151628aed2a6abf7158809cf4f3c")
	got := hex.EncodeToString(AES128Schedule(key)[160:])
	if got != "d014f9a8c9ee2589e13f0cc8b6630ca6" {
		t.Fatalf("last round key %s", got)
	}
}
