package webui_test

import (
	"log"
	"net/http"
	"os"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/webui"
)

// The UI mounted on an admin listener, read-only, with the password from
// the environment (a worker does this itself when monitoring.enabled is
// set). Needs a Redis, so this example is compiled, not run.
func ExampleNew() {
	ui, err := webui.New(webui.Options{
		Redis:    asynq.RedisClientOpt{Addr: "127.0.0.1:6379"},
		Username: "operator",
		Password: os.Getenv("GATEWAYQ_MONITORING_PASSWORD"),
		ReadOnly: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer ui.Close()
	mux := http.NewServeMux()
	mux.Handle(webui.RootPath+"/", ui) // http://127.0.0.1:8080/monitoring/
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", mux))
}
