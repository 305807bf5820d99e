package jobstatus_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/hibiken/asynq"

	"github.com/gatewayq/gatewayq/internal/redistest"
	"github.com/gatewayq/gatewayq/jobstatus"
	"github.com/gatewayq/gatewayq/tasks"
)

// Look a job up by the ID its enqueue returned, on whichever queue it is.
// The example needs a Redis at REDIS_ADDR (default 127.0.0.1:6379).
func ExampleFinder_Find() {
	ctx := context.Background()
	redisOpt := asynq.RedisClientOpt{Addr: redistest.Addr()}
	prefix := fmt.Sprintf("example-jobstatus-%d:", time.Now().UnixNano()) // redis.queue_prefix
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	insp := asynq.NewInspector(redisOpt)
	defer insp.Close()
	defer insp.DeleteQueue(tasks.QueueName(prefix, tasks.QueueBulk), true)

	res, err := tasks.NewEnqueuer(client, tasks.EnqueueOptions{QueuePrefix: prefix}).Enqueue(ctx, newJob(), tasks.QueueBulk)
	if err != nil {
		log.Fatal(err)
	}
	st, err := jobstatus.New(insp, jobstatus.Options{QueuePrefix: prefix}).Find(ctx, res.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.Queue, st.State, st.Job.Key, st.Job.Ref)
	// Output:
	// bulk pending GST/123039858/GST/2026-09-30 payslip-4411
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
