// Package termui holds the little the command-line tools need to draw
// progress: whether output goes to a terminal, and a text bar.
package termui

import (
	"io"
	"os"
	"strings"
)

// IsTerminal reports whether w is a terminal, where a progress line can
// redraw itself in place; a log file or pipe gets plain lines instead.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Bar draws n of total as a bar width characters wide, e.g. "[###.......]".
func Bar(n, total, width int) string {
	if total <= 0 || width <= 0 {
		return ""
	}
	filled := min(max(n, 0)*width/total, width)
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + "]"
}
