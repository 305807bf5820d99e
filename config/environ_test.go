package config

import (
	"reflect"
	"testing"
	"time"
)

func TestEnvironRoundTrip(t *testing.T) {
	t.Parallel()
	for _, p := range Profiles() {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			c := Default(p)
			c.Redis.Addr = "10.0.0.7:6380"
			c.Redis.QueuePrefix = "staging:"
			c.Limits.CloudMaxInFlight = 0 // a zero that differs from the default must survive
			c.Limits.RealtimeReserve = 0.35
			c.Gateway.CallTimeout = 45 * time.Second
			c.Worker.Queues = Queues{"realtime": 9, "bulk": 1}
			c.Worker.ShutdownTimeout = 2 * time.Minute
			got, err := Load("", append(c.Environ(), "GATEWAYQ_PROFILE="+string(p)))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Fatalf("round trip changed the config:\n got %+v\nwant %+v", got, c)
			}
		})
	}
}
