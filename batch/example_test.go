package batch_test

import (
	"context"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/batch"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/tasks"
)

// A bulk enqueue records each line of its batch (jobfile does it with
// EnqueueOptions.Recorder); Status then counts where they stand.
func ExampleStore_Status() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	defer rdb.Close()
	const prefix, queue = "example:batch:", "example:batch:bulk"
	opt := asynq.RedisClientOpt{Addr: redistest.Addr()}
	client, insp := asynq.NewClient(opt), asynq.NewInspector(opt)
	defer client.Close()
	defer insp.Close()
	clean := func() {
		_ = insp.DeleteQueue(queue, true)
		rdb.Del(ctx, prefix+"{batch:b-example}:jobs", prefix+"{batch:b-example}:order", prefix+"{batch:b-example}:meta", prefix+"batches")
	}
	clean()
	defer clean()

	// One job on the queue, one line refused at enqueue.
	if _, err := client.Enqueue(asynq.NewTask(tasks.TypeGatewayCall, []byte(`{}`), asynq.Queue(queue), asynq.TaskID("task-1"))); err != nil {
		fmt.Println(err)
		return
	}
	store := batch.New(rdb, prefix, batch.Options{})
	err := store.Record(ctx, "b-example", []batch.Member{
		{Line: 1, TaskID: "task-1", Queue: queue, Operation: tasks.OpFile, Key: "GST/123039858/GST/2017-07-31"},
		{Line: 2, Refused: "body: payload fails IR's XSD"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	st, err := store.Status(ctx, "b-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("jobs %d, pending %d, refused %d, progress %.0f%%\n", st.Jobs, st.Pending, st.Refused, st.Progress)
	// Output:
	// jobs 1, pending 1, refused 1, progress 0%
}
