package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/internal/redistest"
)

func randomKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func sampleSet(id string) TokenSet {
	return TokenSet{
		ID:           id,
		AccessToken:  "ACCESS-" + id + "-s3cr3t",
		RefreshToken: "REFRESH-" + id + "-s3cr3t",
		Expiry:       time.Date(2026, 3, 1, 17, 0, 0, 0, time.UTC),
		Endpoint:     gatewayclient.EndpointCloud,
		Scope:        "MYIR.Services",
		User:         "myir-user",
		ConsentedAt:  time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC),
	}
}

type storeSetup struct {
	r     *redistest.Redis
	store *Store
	keys  Keyring
}

func setup(t *testing.T) storeSetup {
	t.Helper()
	r := redistest.New(t)
	keys := Keyring{Current: "k1", Keys: map[string][]byte{"k1": randomKey(t)}}
	s, err := NewStore(r.Client, r.Prefix, keys)
	if err != nil {
		t.Fatal(err)
	}
	return storeSetup{r: r, store: s, keys: keys}
}

func TestStoreRoundTrip(t *testing.T) {
	t.Parallel()
	st := setup(t)
	ctx := context.Background()
	want := sampleSet("user-1@dsp")
	if err := st.store.Put(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := st.store.Get(ctx, want.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != want.AccessToken || got.RefreshToken != want.RefreshToken || !got.Expiry.Equal(want.Expiry) ||
		got.Endpoint != want.Endpoint || got.Scope != want.Scope || got.User != want.User || !got.ConsentedAt.Equal(want.ConsentedAt) {
		t.Errorf("got %+v, want %+v", got, want) // redacted by String
	}

	// The raw Redis value carries no token, and names its key.
	raw, err := st.r.Client.Get(ctx, st.store.key(want.ID)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(raw, "s3cr3t") || strings.Contains(raw, "ACCESS") || !strings.HasPrefix(raw, "v1.k1.") {
		t.Errorf("raw value %q", raw)
	}
	// Two writes of the same set differ (random nonce).
	if err := st.store.Put(ctx, want); err != nil {
		t.Fatal(err)
	}
	raw2, _ := st.r.Client.Get(ctx, st.store.key(want.ID)).Result()
	if raw2 == raw {
		t.Error("same ciphertext twice: nonce reused")
	}

	infos, err := st.store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].ID != want.ID || !infos[0].HasRefreshToken || infos[0].KeyID != "k1" || infos[0].User != "myir-user" {
		t.Errorf("List = %+v", infos)
	}
	if s := fmt.Sprintf("%+v", infos); strings.Contains(s, "s3cr3t") {
		t.Errorf("List leaks a token: %s", s)
	}

	if err := st.store.Delete(ctx, want.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.store.Get(ctx, want.ID); !errors.Is(err, ErrTokenSetNotFound) {
		t.Errorf("after Delete: %v", err)
	}
	if err := st.store.Delete(ctx, want.ID); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if infos, err := st.store.List(ctx); err != nil || len(infos) != 0 {
		t.Errorf("List after Delete = %v, %v", infos, err)
	}
}

func TestStoreKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("wrong key", func(t *testing.T) {
		t.Parallel()
		st := setup(t)
		must(t, st.store.Put(ctx, sampleSet("a")))
		other, err := NewStore(st.r.Client, st.r.Prefix, Keyring{Current: "k1", Keys: map[string][]byte{"k1": randomKey(t)}})
		must(t, err)
		_, err = other.Get(ctx, "a")
		if !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), `key "k1"`) {
			t.Fatalf("err = %v, want ErrDecrypt naming k1", err)
		}
		assertNoKeyMaterial(t, err, st.keys.Keys["k1"])
	})

	t.Run("unknown key ID", func(t *testing.T) {
		t.Parallel()
		st := setup(t)
		must(t, st.store.Put(ctx, sampleSet("a")))
		other, err := NewStore(st.r.Client, st.r.Prefix, Keyring{Current: "k2", Keys: map[string][]byte{"k2": randomKey(t)}})
		must(t, err)
		_, err = other.Get(ctx, "a")
		if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `key "k1"`) {
			t.Fatalf("err = %v, want ErrUnknownKey naming k1", err)
		}
		infos, err := other.List(ctx)
		if !errors.Is(err, ErrUnknownKey) || len(infos) != 0 {
			t.Errorf("List = %v, %v", infos, err)
		}
	})

	t.Run("rotation", func(t *testing.T) {
		t.Parallel()
		st := setup(t)
		must(t, st.store.Put(ctx, sampleSet("old")))
		rotated, err := NewStore(st.r.Client, st.r.Prefix, Keyring{Current: "k2", Keys: map[string][]byte{
			"k1": st.keys.Keys["k1"], "k2": randomKey(t),
		}})
		must(t, err)
		if ts, err := rotated.Get(ctx, "old"); err != nil || ts.AccessToken != sampleSet("old").AccessToken {
			t.Fatalf("old set under rotated keyring: %v", err)
		}
		must(t, rotated.Put(ctx, sampleSet("new")))
		must(t, rotated.Put(ctx, sampleSet("old"))) // rewritten under k2
		infos, err := rotated.List(ctx)
		must(t, err)
		for _, in := range infos {
			if in.KeyID != "k2" {
				t.Errorf("%s still under %s", in.ID, in.KeyID)
			}
		}
		raw, _ := st.r.Client.Get(ctx, rotated.key("new")).Result()
		if !strings.HasPrefix(raw, "v1.k2.") {
			t.Errorf("new write not under the current key: %q", raw[:8])
		}
		// The old store (k1 only) cannot read k2 values, and says so.
		if _, err := st.store.Get(ctx, "new"); !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `"k2"`) {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("tampered", func(t *testing.T) {
		t.Parallel()
		st := setup(t)
		must(t, st.store.Put(ctx, sampleSet("a")))
		raw, _ := st.r.Client.Get(ctx, st.store.key("a")).Result()
		sealed, _ := base64.RawStdEncoding.DecodeString(raw[len("v1.k1."):])
		sealed[len(sealed)-20] ^= 1
		for name, v := range map[string]string{
			"flipped bit": "v1.k1." + base64.RawStdEncoding.EncodeToString(sealed),
			"truncated":   raw[:20],
			"not base64":  "v1.k1.!!!",
			"no format":   "garbage",
			"version":     "v9" + raw[2:],
		} {
			must(t, st.r.Client.Set(ctx, st.store.key("a"), v, 0).Err())
			if _, err := st.store.Get(ctx, "a"); !errors.Is(err, ErrDecrypt) {
				t.Errorf("%s: err = %v, want ErrDecrypt", name, err)
			}
		}
	})

	t.Run("swapped between IDs", func(t *testing.T) {
		t.Parallel()
		st := setup(t)
		must(t, st.store.Put(ctx, sampleSet("alice")))
		must(t, st.store.Put(ctx, sampleSet("bob")))
		raw, _ := st.r.Client.Get(ctx, st.store.key("alice")).Result()
		must(t, st.r.Client.Set(ctx, st.store.key("bob"), raw, 0).Err())
		if _, err := st.store.Get(ctx, "bob"); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("alice's value accepted as bob's: %v", err)
		}
	})
}

func assertNoKeyMaterial(t *testing.T, err error, key []byte) {
	t.Helper()
	s := err.Error()
	for _, enc := range []string{string(key), base64.StdEncoding.EncodeToString(key), fmt.Sprintf("%x", key), fmt.Sprint(key)} {
		if strings.Contains(s, enc) {
			t.Errorf("error contains key material: %v", err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestStoreCredentials(t *testing.T) {
	t.Parallel()
	st := setup(t)
	ctx := context.Background()
	clk := newClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	st.store.now = clk.Now
	must(t, st.store.Put(ctx, sampleSet("u1"))) // expires 17:00

	cr := st.store.Credentials("u1")
	h, err := cr.AuthorizationHeader(ctx)
	if err != nil || h != "Bearer ACCESS-u1-s3cr3t" {
		t.Fatalf("header %q, %v", h, err)
	}
	tests := []struct {
		name  string
		id    string
		at    time.Duration // after 10:00
		class gatewayclient.Class
		is    error
	}{
		{"missing", "nobody", 0, gatewayclient.ClassAuth, ErrTokenSetNotFound},
		{"within skew of expiry", "u1", 6*time.Hour + 59*time.Minute + 30*time.Second, gatewayclient.ClassAuth, ErrTokenExpired},
		{"expired", "u1", 8 * time.Hour, gatewayclient.ClassAuth, ErrTokenExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: the subtests move the shared clock.
			clk.ns.Store(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).Add(tt.at).UnixNano())
			_, err := st.store.Credentials(tt.id).AuthorizationHeader(ctx)
			var ge *gatewayclient.Error
			if !errors.As(err, &ge) || ge.Class != tt.class || !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want %v wrapping %v", err, tt.class, tt.is)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}

	// A set the keyring cannot open is a configuration problem.
	other, err := NewStore(st.r.Client, st.r.Prefix, Keyring{Current: "k9", Keys: map[string][]byte{"k9": randomKey(t)}})
	must(t, err)
	_, err = other.Credentials("u1").AuthorizationHeader(ctx)
	if gatewayclient.ClassOf(err) != gatewayclient.ClassConfig {
		t.Errorf("err = %v, want ClassConfig", err)
	}
}

func TestTokenSetRedaction(t *testing.T) {
	t.Parallel()
	ts := sampleSet("u1")
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("set", "ts", ts)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("set", "ts", ts)
	for name, out := range map[string]string{
		"%v": fmt.Sprintf("%v", ts), "%+v": fmt.Sprintf("%+v", ts), "%#v": fmt.Sprintf("%#v", ts),
		"%s": fmt.Sprintf("%s", ts), "slog": buf.String(), "ptr": fmt.Sprintf("%v", &ts),
	} {
		if strings.Contains(out, "s3cr3t") {
			t.Errorf("%s leaks a token: %s", name, out)
		}
		if !strings.Contains(out, "u1") {
			t.Errorf("%s lost the ID: %s", name, out)
		}
	}
}

func TestKeyringAndPutValidation(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	bad := []struct {
		name string
		k    Keyring
		want string
	}{
		{"no current", Keyring{Keys: map[string][]byte{"a": make([]byte, 32)}}, "Current: required"},
		{"current missing", Keyring{Current: "b", Keys: map[string][]byte{"a": make([]byte, 32)}}, `"b" is not in Keys`},
		{"short key", Keyring{Current: "a", Keys: map[string][]byte{"a": make([]byte, 16)}}, "16 bytes, want 32"},
		{"bad id", Keyring{Current: "a.b", Keys: map[string][]byte{"a.b": make([]byte, 32)}}, "key ID"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewStore(r.Client, r.Prefix, tt.k); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	s, err := NewStore(r.Client, r.Prefix, Keyring{Current: "a", Keys: map[string][]byte{"a": randomKey(t)}})
	must(t, err)
	for _, ts := range []TokenSet{{ID: "", AccessToken: "x"}, {ID: "a b", AccessToken: "x"}, {ID: "a}{b", AccessToken: "x"}, {ID: "ok"}} {
		if err := s.Put(context.Background(), ts); err == nil {
			t.Errorf("Put(%q) accepted", ts.ID)
		}
	}
}

func TestStoreCache(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	keys := Keyring{Current: "k1", Keys: map[string][]byte{"k1": bytes.Repeat([]byte{7}, 32)}}
	now := time.Unix(1_800_000_000, 0)
	a, err := NewStore(r.Client, r.Prefix, keys)
	if err != nil {
		t.Fatal(err)
	}
	a.now = func() time.Time { return now }
	a.CacheFor(2 * time.Second)
	b, _ := NewStore(r.Client, r.Prefix, keys) // another process
	b.now = a.now
	ctx := context.Background()
	put := func(s *Store, tok string) {
		t.Helper()
		if err := s.Put(ctx, TokenSet{ID: "ts", AccessToken: tok, Expiry: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	header := func() string {
		t.Helper()
		h, err := a.Credentials("ts").AuthorizationHeader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	put(a, "one")
	if h := header(); h != "Bearer one" {
		t.Fatalf("header %q", h)
	}
	put(b, "two") // another process rotates the set
	if h := header(); h != "Bearer one" {
		t.Fatalf("within the TTL the cached set is used, got %q", h)
	}
	now = now.Add(2 * time.Second)
	if h := header(); h != "Bearer two" {
		t.Fatalf("after the TTL the set is read again, got %q", h)
	}
	put(a, "three") // this process's own Put drops its cached copy at once
	if h := header(); h != "Bearer three" {
		t.Fatalf("after Put, got %q", h)
	}
	if err := a.Delete(ctx, "ts"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Credentials("ts").AuthorizationHeader(ctx); err == nil {
		t.Fatal("a deleted set still authorises calls")
	}
}
