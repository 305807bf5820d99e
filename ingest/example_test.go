package ingest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/gatewayq/gatewayq/ingest"
	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/jobstatus"
	"github.com/gatewayq/gatewayq/tasks"
)

// A service posts a job when a payslip is approved. Posting it again (a
// retried webhook, a redelivered message) answers the job already there.
// The example needs a Redis at REDIS_ADDR (default 127.0.0.1:6379).
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	defer rdb.Close()
	prefix := fmt.Sprintf("example-ingest-%d:", time.Now().UnixNano()) // your redis.queue_prefix
	ac := asynq.NewClientFromRedisClient(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	defer insp.DeleteQueue(tasks.QueueName(prefix, tasks.QueueRealtime), true)

	api, err := ingest.New(ingest.Options{
		Enqueuer: tasks.NewEnqueuer(ac, tasks.EnqueueOptions{QueuePrefix: prefix}),
		Finder:   jobstatus.New(insp, jobstatus.Options{QueuePrefix: prefix}),
		Redis:    rdb, KeyPrefix: prefix,
		Keys:   []ingest.Key{{Name: "payroll", Secret: "payroll-0123456789abcdef"}},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	// A worker serves it on its own TLS listener (ingest.enabled); here,
	// a test server.
	srv := httptest.NewTLSServer(api)
	defer srv.Close()

	job, _ := json.Marshal(map[string]any{
		"service": "returns", "operation": "File",
		"auth": map[string]any{"mode": "oauth", "token_set": "acme-user-17"},
		"body": gstPayload, "ref": "payslip-4411",
	})
	post := func() {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/jobs", strings.NewReader(string(job)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer payroll-0123456789abcdef")
		resp, err := srv.Client().Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Print(resp.Status, "\n", string(body))
	}
	post()
	post()
	// Output:
	// 202 Accepted
	// {"id":"returns:File:GST/123039858/GST/2026-09-30:2fe39329dfa19ca485f6","queue":"realtime","state":"pending","duplicate":false,"ref":"payslip-4411"}
	// 200 OK
	// {"id":"returns:File:GST/123039858/GST/2026-09-30:2fe39329dfa19ca485f6","queue":"realtime","state":"pending","duplicate":true,"ref":"payslip-4411"}
}

// The GST return the examples file: IR's sample nil return.
const gstPayload = `<fileRequest xmlns="urn:www.ird.govt.nz/GWS:types/ReturnGST.v1">
  <fileHeader xmlns="urn:www.ird.govt.nz/GWS:types/ReturnCommon.v1">
    <softwareProviderData xmlns="urn:www.ird.govt.nz/GWS:types/Common.v1">
      <softwareProvider>Acme Payroll</softwareProvider>
      <softwarePlatform>Cloud</softwarePlatform>
      <softwareRelease>4.2</softwareRelease>
    </softwareProviderData>
    <identifier xmlns="urn:www.ird.govt.nz/GWS:types/Common.v1" IdentifierValueType="ACCIRD">123039858</identifier>
    <accountType xmlns="urn:www.ird.govt.nz/GWS:types/Common.v1">GST</accountType>
    <periodEndDate>2026-09-30</periodEndDate>
    <majorFormType>GST</majorFormType>
    <minorFormType>101A</minorFormType>
  </fileHeader>
  <fileBody xmlns="urn:www.ird.govt.nz/GWS:types/ReturnCommon.v1">
    <standardFields>
      <isNilReturn>true</isNilReturn>
      <isFinalReturn>false</isFinalReturn>
      <amendmentRequest><isAmended>false</isAmended><amendReason/><amendDetails/></amendmentRequest>
    </standardFields>
    <formFields xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:gst="urn:www.ird.govt.nz/GWS:types/ReturnGST.v1" xsi:type="gst:FormFieldsType">
      <gst:gstSpecificFields>
        <gst:totalSales>0.00</gst:totalSales>
        <gst:totalSalesRestHomes>0.00</gst:totalSalesRestHomes>
        <gst:totalSalesHospitals>0.00</gst:totalSalesHospitals>
        <gst:zeroRatedSupplies>0.00</gst:zeroRatedSupplies>
        <gst:debitAdjustments>
          <gst:privateUsePeriodAdjustment>0.00</gst:privateUsePeriodAdjustment>
          <gst:privateUseOneOff>0.00</gst:privateUseOneOff>
          <gst:assetsAfterCease>0.00</gst:assetsAfterCease>
          <gst:entertainment>0.00</gst:entertainment>
          <gst:changeAccountingBasis>0.00</gst:changeAccountingBasis>
          <gst:exemptSupplies>0.00</gst:exemptSupplies>
          <gst:currentRateGSTAdjustments>0.00</gst:currentRateGSTAdjustments>
          <gst:other>0.00</gst:other>
        </gst:debitAdjustments>
        <gst:totalExpenses>0.00</gst:totalExpenses>
        <gst:creditAdjustments>
          <gst:useOfPrivateGoods>0.00</gst:useOfPrivateGoods>
          <gst:privateAssetsForBusiness>0.00</gst:privateAssetsForBusiness>
          <gst:changeAccountingBasis>0.00</gst:changeAccountingBasis>
          <gst:currentRateGSTCredits>0.00</gst:currentRateGSTCredits>
          <gst:other>0.00</gst:other>
        </gst:creditAdjustments>
        <gst:totalGST>0.00</gst:totalGST>
      </gst:gstSpecificFields>
    </formFields>
  </fileBody>
</fileRequest>`
