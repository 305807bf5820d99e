package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/tasks"
)

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

// A producer builds a job from the payload its software produced; the
// task ID comes from the return's natural key and the body, so the same
// return enqueued twice is one task.
func ExampleNewTask() {
	job := &tasks.Job{
		Service:   gatewayclient.ServiceReturns,
		Operation: tasks.OpFile,
		Auth:      tasks.Auth{Mode: gatewayclient.AuthOAuth, TokenSet: "acme-user-17"},
		Body:      gstPayload,
		Batch:     "gst-2026-09",
	}
	t, err := tasks.NewTask(job)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(t.Type())
	fmt.Println(job.Key)
	// Output:
	// gatewayq:call
	// GST/123039858/GST/2026-09-30
}

// Bad input is refused before it reaches a queue, with every field named.
func ExampleJob_Validate() {
	job := &tasks.Job{
		Service:   gatewayclient.ServiceReturns,
		Operation: tasks.OpFile,
		Auth:      tasks.Auth{Mode: gatewayclient.AuthM2M}, // returns need an end user's OAuth token
		Body:      gstPayload,
	}
	_ = job.Normalize()
	err := job.Validate()
	fmt.Println(errors.Is(err, tasks.ErrInvalidJob))
	fmt.Println(err)
	// Output:
	// true
	// auth.mode: service returns cannot take m2m auth: return filing, employment and intermediation need an end user's OAuth token
}

// Event-driven producers enqueue on the realtime queue, served before the
// nightly bulk batch. (Needs a Redis, so this example is compiled, not run.)
func ExampleEnqueuer_Enqueue() {
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:6379"})
	defer client.Close()
	enq := tasks.NewEnqueuer(client, tasks.EnqueueOptions{})
	res, err := enq.Enqueue(context.Background(), &tasks.Job{
		Service: gatewayclient.ServiceReturns, Operation: tasks.OpFile,
		Auth: tasks.Auth{Mode: gatewayclient.AuthOAuth, TokenSet: "acme-user-17"},
		Body: gstPayload,
	}, tasks.QueueRealtime)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.ID, res.Duplicate)
}
