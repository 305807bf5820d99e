package redrive_test

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/failures"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/redrive"
	"github.com/gatewayq/gatewayq/tasks"
)

// A dry run first: what would move, by cause, and nothing moved; the run
// is recorded all the same.
func ExampleRedriver_Run() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	defer rdb.Close()
	const prefix = "example:redrive:"
	opt := asynq.RedisClientOpt{Addr: redistest.Addr()}
	client, insp := asynq.NewClient(opt), asynq.NewInspector(opt)
	defer client.Close()
	defer insp.Close()
	clean := func() {
		for _, q := range tasks.Queues {
			_ = insp.DeleteQueue(tasks.QueueName(prefix, q), true)
		}
		keys, _ := rdb.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	}
	clean()
	defer clean()

	// A job the worker parked: its myIR logon lacks delegated access.
	index := failures.New(rdb, prefix, failures.Options{})
	err := index.Put(ctx, failures.Record{TaskID: "task-1", Queue: tasks.QueueName(prefix, tasks.QueueBulk), Batch: "b-1",
		Class: "permission", StatusCode: 4, At: time.Now()}, []byte(`{"version":1}`))
	if err != nil {
		fmt.Println(err)
		return
	}

	r := redrive.New(redrive.Config{Redis: rdb, KeyPrefix: prefix, QueuePrefix: prefix, Inspector: insp,
		Enqueuer: tasks.NewEnqueuer(client, tasks.EnqueueOptions{QueuePrefix: prefix})})
	run, err := r.Run(ctx, redrive.Options{Filter: failures.Filter{Batch: "b-1", Class: "permission"}, DryRun: true, Who: "alice"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("selected", run.Selected, run.ByCause)
	for _, j := range run.Jobs {
		fmt.Println(j.TaskID, j.Outcome)
	}
	history, _ := r.History(ctx, 1)
	fmt.Println("recorded:", history[0].Who, history[0].DryRun, history[0].FilterText)
	// Output:
	// selected 1 map[permission (code 4):1]
	// task-1 would redrive
	// recorded: alice true batch=b-1 class=permission
}
