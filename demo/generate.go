package demo

import (
	"bytes"
	"embed"
	"fmt"
	"math/rand/v2"
	"strings"
	"text/template"
	"time"

	"github.com/gatewayq/gatewayq/gatewayclient"
	"github.com/gatewayq/gatewayq/tasks"
)

//go:embed templates/*.xml
var templateFS embed.FS

var templates = template.Must(template.ParseFS(templateFS, "templates/*.xml"))

// IRDNumber returns the 9-digit IRD number with base n (8 digits, from
// 10,000,000 upwards) and IR's mod-11 check digit, or false when n has
// none (IR skips such bases).
func IRDNumber(base int) (string, bool) {
	if base < 10_000_000 || base > 149_999_999/10 {
		return "", false
	}
	d := fmt.Sprintf("%08d", base)
	check := func(weights [8]int) int {
		sum := 0
		for i, w := range weights {
			sum += int(d[i]-'0') * w
		}
		r := sum % 11
		if r == 0 {
			return 0
		}
		return 11 - r
	}
	c := check([8]int{3, 2, 7, 6, 5, 4, 3, 2})
	if c == 10 {
		c = check([8]int{7, 4, 3, 2, 5, 2, 7, 6})
		if c == 10 {
			return "", false
		}
	}
	return fmt.Sprintf("%s%d", d, c), true
}

// Batch is what the demo enqueues.
type Batch struct {
	Jobs []*tasks.Job
	// Expected counts what the sandbox should answer, to check the run
	// against: deliberately broken jobs are part of the demo.
	Denied      int // filed for identifiers the user may not act for
	BadPeriod   int // GST period end dates that are not a month end
	BadSchema   int // payloads failing IR's XSD: refused at enqueue
	AccountJobs int // REST Account look-ups with M2M
}

// GenerateOptions shape the demo batch.
type GenerateOptions struct {
	Returns   int // GST and payday returns, about half each
	Accounts  int // account look-ups
	TokenSets []string
	Seed      uint64
	BatchID   string
	// DenyEvery makes every n-th return use an identifier its user may
	// not act for (the sandbox is told by Denied()).
	DenyEvery int
	// FirstBase is where the IRD numbers' 8-digit bases start (a return
	// takes one to three). Zero value: 12,300,000. Calls with bases far
	// enough apart make different returns, so a large file can be
	// generated a chunk at a time.
	FirstBase int
}

// Denial is an (identifier, account type) the demo's sandbox refuses a user.
type Denial struct{ User, Identifier, AccountType string }

// Generate builds a realistic batch from IR's sample payloads: varied IRD
// numbers, periods and amounts, a few returns the sandbox will refuse
// (delegation, a bad period), a few that fail IR's XSD, and account
// look-ups over the REST API.
func Generate(o GenerateOptions) (*Batch, []Denial, error) {
	rng := rand.New(rand.NewPCG(o.Seed, 42))
	b := &Batch{}
	var denials []Denial
	base := 12_300_000
	if o.FirstBase > 0 {
		base = o.FirstBase
	}
	nextIRD := func() string {
		for {
			base++
			if s, ok := IRDNumber(base); ok {
				return s
			}
		}
	}
	monthEnd := func(monthsAgo int) time.Time {
		first := time.Date(2026, time.October, 1, 0, 0, 0, 0, time.UTC).AddDate(0, -monthsAgo, 0)
		return first.AddDate(0, 1, -1)
	}
	for i := 0; i < o.Returns; i++ {
		user := o.TokenSets[i%len(o.TokenSets)]
		ird := nextIRD()
		var (
			name string
			data map[string]string
			acct string
		)
		period := monthEnd(rng.IntN(12))
		if i%2 == 0 {
			name, acct = "gst-file.xml", "GST"
			sales := 1000 + rng.IntN(90_000)
			expenses := rng.IntN(sales)
			data = map[string]string{
				"Identifier": ird, "PeriodEndDate": period.Format(time.DateOnly),
				"TotalSales": money(sales), "TotalExpenses": money(expenses), "TotalGST": money((sales - expenses) * 3 / 23),
			}
			if o.DenyEvery > 0 && i%(o.DenyEvery*4) == 2 {
				// Not a month end: the sandbox's business rule refuses it.
				data["PeriodEndDate"] = period.AddDate(0, 0, -3).Format(time.DateOnly)
				b.BadPeriod++
			}
		} else {
			name, acct = "ei-file.xml", "PSO"
			payday := period.AddDate(0, 0, -rng.IntN(25))
			data = map[string]string{
				"Identifier": ird, "PeriodEndDate": period.Format(time.DateOnly), "PayDayDate": payday.Format(time.DateOnly),
				"Employee1": nextIRD(), "Employee2": nextIRD(), "TotalGross": fmt.Sprint(2000 + rng.IntN(50_000)),
			}
		}
		if o.DenyEvery > 0 && i%o.DenyEvery == o.DenyEvery-1 {
			denials = append(denials, Denial{User: user, Identifier: ird, AccountType: acct})
			b.Denied++
		}
		var buf bytes.Buffer
		if err := templates.ExecuteTemplate(&buf, name, data); err != nil {
			return nil, nil, err
		}
		body := buf.String()
		if o.DenyEvery > 0 && i%(o.DenyEvery*5) == 4 {
			// A payload IR's XSD refuses (IR's own schema-error sample does
			// the same): gatewayq rejects it at enqueue, before it costs a
			// rate-limit permit.
			body = strings.Replace(body, data["PeriodEndDate"], "1800-01-02", 1)
			b.BadSchema++
		}
		b.Jobs = append(b.Jobs, &tasks.Job{
			Service: gatewayclient.ServiceReturns, Operation: tasks.OpFile, Endpoint: gatewayclient.EndpointCloud,
			Auth: tasks.Auth{Mode: gatewayclient.AuthOAuth, TokenSet: user}, Body: body, Batch: o.BatchID,
			Ref: fmt.Sprintf("demo-%04d", i),
		})
	}
	for i := 0; i < o.Accounts; i++ {
		b.Jobs = append(b.Jobs, &tasks.Job{
			Service: gatewayclient.ServiceAccount, Operation: "list", Endpoint: gatewayclient.EndpointCloud,
			Auth:  tasks.Auth{Mode: gatewayclient.AuthM2M},
			Body:  fmt.Sprintf(`{"CustomerID":%q,"CustomerIDType":"IRD"}`, nextIRD()),
			Batch: o.BatchID, Ref: fmt.Sprintf("demo-acct-%03d", i),
		})
		b.AccountJobs++
	}
	return b, denials, nil
}

func money(dollars int) string { return fmt.Sprintf("%d.00", dollars) }
