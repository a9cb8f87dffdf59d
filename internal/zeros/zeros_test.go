package zeros

import "testing"

func TestAll(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"empty", nil, true},
		{"short zeros", make([]byte, 5), true},
		{"long zeros", make([]byte, 4096+3), true},
		{"first byte", append([]byte{1}, make([]byte, 63)...), false},
		{"in a word", append(make([]byte, 19), 0x80, 0, 0, 0, 0, 0, 0, 0, 0), false},
		{"in the tail", append(make([]byte, 16), 0, 0, 7), false},
		{"last of a word", append(make([]byte, 7), 1, 0, 0), false},
	}
	for _, tc := range tests {
		if got := All(tc.b); got != tc.want {
			t.Errorf("%s: All = %v, want %v", tc.name, got, tc.want)
		}
	}
}
