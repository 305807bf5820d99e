package webui

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/tasks"
)

const secret = "<gst:totalSalesAndIncome>98765</gst:totalSalesAndIncome>"

func TestHiddenPayloads(t *testing.T) {
	j := tasks.Job{Version: 1, Service: gatewayclient.ServiceReturns, Operation: tasks.OpFile,
		Auth: tasks.Auth{Mode: gatewayclient.AuthOAuth, TokenSet: "ts-9"}, Ref: "gst-77", Batch: "b-1",
		Key:  &tasks.NaturalKey{Identifier: "123456789", AccountType: "GST", PeriodEndDate: "2026-03-31", MajorFormType: "GST"},
		Body: "<gst:fileRequest>" + secret + "</gst:fileRequest>"}
	payload, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got := hiddenPayloads.FormatPayload(tasks.TypeGatewayCall, payload)
	if strings.Contains(got, "98765") {
		t.Fatalf("the body shows: %s", got)
	}
	var shown tasks.Job
	if err := json.Unmarshal([]byte(got), &shown); err != nil {
		t.Fatalf("not a job any more (%v): %s", err, got)
	}
	if want := fmt.Sprintf("(%d bytes hidden", len(j.Body)); !strings.HasPrefix(shown.Body, want) {
		t.Errorf("body shown as %q, want %q...", shown.Body, want)
	}
	shown.Body = j.Body
	if shown.Ref != j.Ref || shown.Batch != j.Batch || *shown.Key != *j.Key || shown.Auth != j.Auth || shown.Operation != j.Operation {
		t.Errorf("what identifies the job is lost: %s", got)
	}

	for name, in := range map[string]struct{ typ, payload string }{
		"another task type": {"other:type", "figures 98765"},
		"not a job":         {tasks.TypeGatewayCall, "figures 98765"},
	} {
		if got := hiddenPayloads.FormatPayload(in.typ, []byte(in.payload)); strings.Contains(got, "98765") || !strings.Contains(got, "hidden") {
			t.Errorf("%s: shown as %q", name, got)
		}
	}
}

func TestHiddenResults(t *testing.T) {
	o := tasks.Outcome{Class: "done", StatusCode: 0, GatewayID: "g-1", SubmissionKey: "s-1", Ref: "gst-77", Response: secret}
	result, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	got := hiddenResults.FormatResult(tasks.TypeGatewayCall, result)
	var shown tasks.Outcome
	if err := json.Unmarshal([]byte(got), &shown); err != nil {
		t.Fatalf("not an outcome any more (%v): %s", err, got)
	}
	if strings.Contains(got, "98765") || !strings.HasPrefix(shown.Response, fmt.Sprintf("(%d bytes hidden", len(secret))) {
		t.Errorf("response shown as %q", shown.Response)
	}
	if shown.GatewayID != "g-1" || shown.SubmissionKey != "s-1" || shown.Ref != "gst-77" || shown.Class != "done" {
		t.Errorf("the outcome is lost: %s", got)
	}
	if got := hiddenResults.FormatResult(tasks.TypeGatewayCall, []byte("figures 98765")); strings.Contains(got, "98765") {
		t.Errorf("a result that is no outcome shows: %q", got)
	}
	// An outcome without a response (a File's) is shown as it is.
	o.Response = ""
	result, _ = json.Marshal(o)
	if got := hiddenResults.FormatResult(tasks.TypeGatewayCall, result); !strings.Contains(got, `"gateway_id":"g-1"`) || strings.Contains(got, "response") {
		t.Errorf("a File's outcome shown as %s", got)
	}
}
