package jobfile_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"text/template"
)

// The payload templates are IR's own sample File requests with a few values
// made into template fields (see demo/templates/SOURCE.md).
var (
	templatesOnce sync.Once
	templates     *template.Template
	templatesErr  error
)

func payloadTemplates(tb testing.TB) *template.Template {
	tb.Helper()
	templatesOnce.Do(func() {
		templates, templatesErr = template.ParseFiles("../demo/templates/gst-file.xml", "../demo/templates/ei-file.xml")
	})
	if templatesErr != nil {
		tb.Fatal(templatesErr)
	}
	return templates
}

// irdNumber returns the n-th valid IRD number from 12,300,001 up: 8 digits
// and IR's mod-11 check digit, skipping the bases that have none.
func irdNumber(n int) string {
	irdMu.Lock()
	defer irdMu.Unlock()
	for base := 12_300_001 + len(irdCache) + irdSkipped; len(irdCache) <= n; base++ {
		if s, ok := withCheckDigit(base); ok {
			irdCache = append(irdCache, s)
		} else {
			irdSkipped++
		}
	}
	return irdCache[n]
}

var (
	irdMu      sync.Mutex
	irdCache   []string
	irdSkipped int
)

func withCheckDigit(base int) (string, bool) {
	d := fmt.Sprintf("%08d", base)
	check := func(weights [8]int) int {
		sum := 0
		for i, w := range weights {
			sum += int(d[i]-'0') * w
		}
		if r := sum % 11; r != 0 {
			return 11 - r
		}
		return 0
	}
	c := check([8]int{3, 2, 7, 6, 5, 4, 3, 2})
	if c == 10 {
		c = check([8]int{7, 4, 3, 2, 5, 2, 7, 6})
	}
	if c == 10 {
		return "", false
	}
	return fmt.Sprintf("%s%d", d, c), true
}

// gstBody renders a GST File payload for the n-th customer, so that each n
// has its own natural key and task ID.
func gstBody(tb testing.TB, n int) string {
	tb.Helper()
	var buf bytes.Buffer
	err := payloadTemplates(tb).ExecuteTemplate(&buf, "gst-file.xml", map[string]string{
		"Identifier":    irdNumber(n),
		"PeriodEndDate": "2026-09-30",
		"TotalSales":    fmt.Sprintf("%d.00", 10_000+n),
		"TotalExpenses": "2300.00",
		"TotalGST":      "1000.00",
	})
	if err != nil {
		tb.Fatal(err)
	}
	return buf.String()
}

// eiBody renders a payday (EI) File payload for the n-th employer.
func eiBody(tb testing.TB, n int) string {
	tb.Helper()
	var buf bytes.Buffer
	err := payloadTemplates(tb).ExecuteTemplate(&buf, "ei-file.xml", map[string]string{
		"Identifier": irdNumber(n), "PeriodEndDate": "2026-09-30", "PayDayDate": "2026-09-15",
		"Employee1": irdNumber(n + 5000), "Employee2": irdNumber(n + 6000), "TotalGross": "4200",
	})
	if err != nil {
		tb.Fatal(err)
	}
	return buf.String()
}

// jobLine is one line of a job file as a producer writes it.
func jobLine(tb testing.TB, fields map[string]any) string {
	tb.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func gstLine(tb testing.TB, n int) string {
	return jobLine(tb, map[string]any{
		"service": "returns", "operation": "File",
		"auth": map[string]any{"mode": "oauth", "token_set": "ts-payroll-1"},
		"body": gstBody(tb, n), "ref": fmt.Sprintf("gst-%d", n),
	})
}

func eiLine(tb testing.TB, n int) string {
	return jobLine(tb, map[string]any{
		"service": "returns", "operation": "File", "endpoint": "cloud",
		"auth": map[string]any{"mode": "oauth", "token_set": "ts-payroll-2"},
		"body": eiBody(tb, n),
	})
}

// badSchemaLine is a GST return whose period end date IR's XSD refuses
// (as IR's own schema-error sample does).
func badSchemaLine(tb testing.TB, n int) string {
	return jobLine(tb, map[string]any{
		"service": "returns", "operation": "File",
		"auth": map[string]any{"mode": "oauth", "token_set": "ts-payroll-1"},
		"body": strings.Replace(gstBody(tb, n), "2026-09-30", "1800-01-02", 1),
	})
}

// writeFile writes lines to a temporary job file and returns its path.
func writeFile(tb testing.TB, lines []string) string {
	tb.Helper()
	path := tb.TempDir() + "/jobs.jsonl"
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}
