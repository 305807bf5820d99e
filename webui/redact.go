package webui

import (
	"encoding/json"
	"fmt"

	"github.com/hibiken/asynqmon"

	"github.com/gatewayq/gatewayq/tasks"
)

// hiddenPayloads formats task payloads without what the operators' UI
// need not show: a job's body (a return's figures, an employee's pay) is
// replaced by its size, leaving what identifies the job (service,
// operation, natural key, token set ID, batch, ref). Anything that is not
// a job this build reads is hidden whole. The notes are short: asynqmon's
// payload column is narrow. Options.ShowPayloads shows everything.
var hiddenPayloads = asynqmon.PayloadFormatterFunc(func(taskType string, payload []byte) string {
	if taskType != tasks.TypeGatewayCall {
		return fmt.Sprintf("(%d bytes hidden: not a gatewayq job)", len(payload))
	}
	j, err := tasks.Decode(payload)
	if err != nil {
		return fmt.Sprintf("(%d bytes hidden: not a job this build reads)", len(payload))
	}
	j.Body = fmt.Sprintf("(%d bytes hidden)", len(j.Body))
	b, err := j.Marshal()
	if err != nil {
		return fmt.Sprintf("(%d bytes hidden)", len(payload))
	}
	return string(b)
})

// hiddenResults formats task results (tasks.Outcome) without IR's response
// to a look-up, which can be a whole return; the outcome's class, status
// code, message, gateway ID and submission key stay.
var hiddenResults = asynqmon.ResultFormatterFunc(func(_ string, result []byte) string {
	var o map[string]json.RawMessage
	if err := json.Unmarshal(result, &o); err != nil {
		return fmt.Sprintf("(%d bytes hidden: not a gatewayq outcome)", len(result))
	}
	if r, ok := o["response"]; ok {
		var s string
		_ = json.Unmarshal(r, &s)
		o["response"], _ = json.Marshal(fmt.Sprintf("(%d bytes hidden)", len(s)))
	}
	b, err := json.Marshal(o)
	if err != nil {
		return fmt.Sprintf("(%d bytes hidden)", len(result))
	}
	return string(b)
})
