package failures_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/failures"
	"github.com/gatewayq/gatewayq/internal/redistest"
)

// The worker's handler records each archived job; an operator lists them
// by cause in the morning.
func ExampleIndex_List() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	defer rdb.Close()
	const prefix = "example:failures:"
	clean := func() { rdb.Del(ctx, prefix+"{failures}:at", prefix+"{failures}:rec", prefix+"{failures}:payload") }
	clean()
	defer clean()
	x := failures.New(rdb, prefix, failures.Options{})

	at := time.Now().Add(-time.Hour)
	for i, class := range []string{"permission", "invalid", "permission"} {
		r := failures.Record{TaskID: fmt.Sprintf("task-%d", i), Queue: "bulk", Batch: "b-1", Class: class, StatusCode: map[string]int{"permission": 4, "invalid": 131}[class], At: at}
		if err := x.Put(ctx, r, []byte(`{"the":"job"}`)); err != nil {
			fmt.Println(err)
			return
		}
	}
	recs, err := x.List(ctx, failures.Filter{Batch: "b-1", Code: "4"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range recs {
		fmt.Println(r.TaskID, r.Cause(), r.State)
	}
	// Output:
	// task-0 permission (code 4) failed
	// task-2 permission (code 4) failed
}
