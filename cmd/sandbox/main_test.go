package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of run and
// reads of the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRun(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "pki")
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--dir", dir, "--cloud-addr", "127.0.0.1:0", "--desktop-addr", "127.0.0.1:0",
			"--clients", "2", "--issue-token", "alice", "--fault-reset", "0.01", "--fault-lose-response", "0.5", "--fault-seed", "7"}, &out, &errOut)
	}()
	for !strings.Contains(out.String(), "access token for alice") {
		select {
		case err := <-done:
			t.Fatalf("run ended early: %v\n%s", err, errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	for _, want := range []string{"https://127.0.0.1:", filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-2.pem"), "JWT sub:",
		"faults:         hang 0 reset 0.01 5xx 0 lose-response 0.5"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "client-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("client key: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestRunBadFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"negative clients", []string{"--clients", "-1"}},
		{"probability above 1", []string{"--fault-hang", "1.5"}},
		{"probabilities summing past 1", []string{"--fault-reset", "0.6", "--fault-5xx", "0.6"}},
		{"not a number", []string{"--fault-lose-response", "often"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut syncBuffer
			args := append([]string{"--dir", t.TempDir(), "--cloud-addr", "127.0.0.1:0", "--desktop-addr", "127.0.0.1:0"}, tt.args...)
			// Cancelled: should run accept the flags, it returns at once.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := run(ctx, args, &out, &errOut); err == nil {
				t.Errorf("run accepted %v", tt.args)
			}
		})
	}
}
