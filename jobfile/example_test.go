package jobfile_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/jobfile"
	"github.com/gatewayq/gatewayq/tasks"
)

func ExampleReader() {
	file := strings.Join([]string{
		"# account look-ups for tonight",
		`{"service":"account","operation":"list","auth":{"mode":"m2m"},"body":"{\"CustomerID\":\"123039858\",\"CustomerIDType\":\"IRD\"}","ref":"acct-1"}`,
		`{"service":"account","operation":"list","auth":{"mode":"m2m"},"body":"{\"CustomerID\":"}`,
		`{"service":"account","oepration":"list"}`,
	}, "\n")
	r := jobfile.NewReader(strings.NewReader(file))
	for l, err := range r.All() {
		if err != nil {
			log.Fatal(err) // an I/O error: the rest of the file is unknown
		}
		if l.Err != nil {
			fmt.Println(l.Err)
			continue
		}
		fmt.Printf("line %d: %s %s, ref %s\n", l.Number, l.Job.Service, l.Job.Operation, l.Job.Ref)
	}
	// Output:
	// line 2: account list, ref acct-1
	// line 3: body: not valid JSON
	// line 4: invalid job: json: unknown field "oepration"
}

func ExampleEnqueue() {
	f, err := os.Open("tonight.jsonl")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:6379"})
	defer client.Close()
	enq := tasks.NewEnqueuer(client, tasks.EnqueueOptions{})

	rep, err := jobfile.Enqueue(context.Background(), f, enq, jobfile.EnqueueOptions{
		OnProgress: func(p jobfile.Progress) {
			log.Printf("%d lines, %d enqueued, %d rejected", p.Lines, p.Enqueued, p.Rejected)
		},
	})
	if err != nil {
		// A *jobfile.StoppedError says where to resume; running the whole
		// file again is safe too.
		log.Fatal(err)
	}
	fmt.Printf("batch %s: %d enqueued, %d already queued, %d rejected\n", rep.Batch, rep.Enqueued, rep.Duplicates, rep.Rejected)
	for _, e := range rep.Errors {
		fmt.Println(e)
	}
}
