package termui

import (
	"bytes"
	"testing"
)

func TestBar(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n, total, width int
		want            string
	}{
		{0, 10, 10, "[..........]"},
		{5, 10, 10, "[#####.....]"},
		{10, 10, 10, "[##########]"},
		{12, 10, 4, "[####]"},
		{-1, 10, 4, "[....]"},
		{1, 0, 4, ""},
	}
	for _, tt := range tests {
		if got := Bar(tt.n, tt.total, tt.width); got != tt.want {
			t.Errorf("Bar(%d, %d, %d) = %q, want %q", tt.n, tt.total, tt.width, got, tt.want)
		}
	}
}

func TestIsTerminal(t *testing.T) {
	t.Parallel()
	if IsTerminal(&bytes.Buffer{}) {
		t.Fatal("a buffer is not a terminal")
	}
}
