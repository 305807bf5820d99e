package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// refreshCounts reads gatewayq_token_refreshes_total by outcome.
func refreshCounts(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "gatewayq_token_refreshes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

func TestMetricsCountRefreshes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := setupRefresh(t)
	reg := prometheus.NewPedanticRegistry()
	st.store.SetMetrics(NewMetrics(reg))
	if got := refreshCounts(t, reg); len(got) != 4 {
		t.Fatalf("outcomes before any refresh: %v, want all four at zero", got)
	}

	// A herd of callers in this process: one refresh.
	st.nearExpiry(t, "herd")
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.store.Fresh(ctx, "herd")
			st.errs.add(err)
		}()
	}
	wg.Wait()

	// IR down for one refresh, then the user withdraws consent.
	flaky := st.nearExpiry(t, "flaky")
	st.fake.mu.Lock()
	st.fake.failNext = []int{http.StatusServiceUnavailable}
	st.fake.mu.Unlock()
	_, err := st.store.Fresh(ctx, "flaky")
	st.errs.add(err)
	if err == nil {
		t.Fatal("refresh against a 503 succeeded")
	}
	st.fake.revokeFamilyOf(flaky.RefreshToken)
	_, err = st.store.Fresh(ctx, "flaky")
	st.errs.add(err)
	if !errors.Is(err, ErrNeedsConsent) {
		t.Fatalf("after revocation: %v", err)
	}

	want := map[string]float64{RefreshRefreshed: 1, RefreshFailed: 1, RefreshDead: 1, RefreshSuperseded: 0}
	if got := refreshCounts(t, reg); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("refreshes %v, want %v", got, want)
	}
}

func TestRefreshOutcome(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{nil, RefreshRefreshed},
		{&consentError{id: "x", reason: "invalid_grant", err: ErrInvalidGrant}, RefreshDead},
		{errRetry, RefreshSuperseded},
		{fmt.Errorf("auth: token set %q: refresh: %w", "x", &OAuthError{Op: "refresh", HTTPStatus: 503, Err: ErrOAuthTransient}), RefreshFailed},
	}
	for _, tt := range tests {
		if got := refreshOutcome(tt.err); got != tt.want {
			t.Errorf("refreshOutcome(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}
