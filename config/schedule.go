package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"
	// IANA zone data embedded in the binary: the Docker image is Alpine
	// without the tzdata package, and a schedule's timezone must load the
	// same on every worker (about 450 KB).
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"
)

// Schedule is the nightly batches the workers enqueue by themselves: at
// each batch's cron time, one worker of the fleet (whichever claims the
// occurrence first in Redis) reads the day's job file and enqueues it.
type Schedule struct {
	// CatchUp is how old an occurrence may be and still run: a worker
	// that starts after the fleet was down runs the latest missed
	// occurrence of each batch within this window, never older ones. It
	// also bounds how long an occurrence whose worker died is taken over.
	// > 0 and less than History. Default 6h.
	CatchUp time.Duration `yaml:"catch_up"`
	// Lease is how long a worker's claim on a running occurrence lasts
	// without renewal (it renews every third of it while it runs). A
	// worker that dies mid-run is taken over by another once its lease
	// expires; re-running the file is safe because task IDs are
	// deterministic. >= 1s. Default 1m.
	Lease time.Duration `yaml:"lease"`
	// History is how long run records and "done" markers are kept in
	// Redis; longer than CatchUp, so a finished occurrence is never run
	// again. Default 720h (30 days).
	History time.Duration `yaml:"history"`
	// Batches lists the scheduled batches. Zero value: none, and the
	// worker runs no scheduler. In YAML, a list of mappings; in the
	// environment (GATEWAYQ_SCHEDULE_BATCHES), the same list as JSON, e.g.
	// [{"name":"nightly","cron":"30 1 * * *","dir":"/data/in"}]. Either
	// replaces the whole list. Default none.
	Batches ScheduledBatches `yaml:"batches"`
}

// Defaults of a ScheduledBatch's optional fields.
const (
	// DefaultScheduleTimezone is IR's (and most NZ payroll's) day.
	DefaultScheduleTimezone = "Pacific/Auckland"
	DefaultScheduleFile     = "{name}-{date}.jsonl"
	DefaultScheduleQueue    = QueueBulk
)

// ScheduledBatch is one batch enqueued on a cron schedule.
type ScheduledBatch struct {
	// Name identifies the batch in Redis keys, run records and metrics,
	// and starts its batch ID ("<name>-YYYY-MM-DD"): 1-48 characters of
	// A-Z a-z 0-9 . _ -, unique. Required.
	Name string `yaml:"name" json:"name"`
	// Cron is when it runs: five fields (minute hour day-of-month month
	// day-of-week, e.g. "30 1 * * *") or a descriptor (@daily, @hourly,
	// @weekly, @monthly, @yearly), read in Timezone. Not @every, which
	// counts from each worker's start rather than the clock, nor a TZ=
	// prefix (use Timezone). Required.
	Cron string `yaml:"cron" json:"cron"`
	// Timezone is the IANA zone of Cron and of the file's {date}. Zero
	// value "": DefaultScheduleTimezone (Pacific/Auckland). Not "Local":
	// every worker must read the schedule alike.
	Timezone string `yaml:"timezone" json:"timezone,omitempty"`
	// Dir is the directory of the job files (JSON lines, as "enqueue
	// bulk" takes). Required.
	Dir string `yaml:"dir" json:"dir"`
	// File is the file's name in Dir: {date} becomes the occurrence's
	// day in Timezone (YYYY-MM-DD) and {name} the batch's Name; it may
	// name a subdirectory but not leave Dir. Zero value "":
	// DefaultScheduleFile ({name}-{date}.jsonl).
	File string `yaml:"file" json:"file,omitempty"`
	// Queue is realtime, bulk or redrive. Zero value "": bulk.
	Queue string `yaml:"queue" json:"queue,omitempty"`
}

// Location is the batch's time zone (Timezone, or the default).
func (b ScheduledBatch) Location() (*time.Location, error) {
	tz := b.Timezone
	if tz == "" {
		tz = DefaultScheduleTimezone
	}
	if tz == "Local" {
		return nil, errors.New(`"Local" depends on each worker's machine; name an IANA zone such as Pacific/Auckland`)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q (want an IANA name such as Pacific/Auckland or UTC)", tz)
	}
	return loc, nil
}

// QueueName is the batch's logical queue (Queue, or bulk).
func (b ScheduledBatch) QueueName() string {
	if b.Queue == "" {
		return DefaultScheduleQueue
	}
	return b.Queue
}

// FileName is the file's path in Dir for the day of t (read in t's
// location: pass the occurrence in the batch's Location).
func (b ScheduledBatch) FileName(t time.Time) string {
	pattern := b.File
	if pattern == "" {
		pattern = DefaultScheduleFile
	}
	return strings.NewReplacer("{date}", t.Format(time.DateOnly), "{name}", b.Name).Replace(pattern)
}

// Path is FileName joined to Dir.
func (b ScheduledBatch) Path(t time.Time) string { return filepath.Join(b.Dir, b.FileName(t)) }

// cronParser reads the five standard fields and the descriptors, as
// crontab does.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron parses a schedule.batches cron spec. The schedule it returns
// reads times in the location of the time given to Next, so pass times in
// the batch's Location.
func ParseCron(spec string) (cron.Schedule, error) {
	s := strings.TrimSpace(spec)
	switch {
	case s == "":
		return nil, errors.New("required (e.g. \"30 1 * * *\" or @daily)")
	case strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ="):
		return nil, fmt.Errorf("no TZ= prefix: set the batch's timezone instead; got %q", spec)
	case strings.HasPrefix(s, "@every"):
		// An @every schedule counts from whenever Next is first called, so
		// workers started at different times would disagree on when an
		// occurrence is, and the fleet would run it more than once.
		return nil, fmt.Errorf("@every is not anchored to the clock, so workers would disagree on its occurrences; use a cron spec such as \"*/15 * * * *\"; got %q", spec)
	}
	sched, err := cronParser.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("not a cron spec (minute hour day-of-month month day-of-week, or @daily...): %q: %v", spec, err)
	}
	return sched, nil
}

var (
	scheduleNamePattern  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,48}$`)
	schedulePlaceholders = regexp.MustCompile(`\{[^{}]*\}`)
)

// Validate checks the schedule section alone, as ValidateFor does; each
// error is a *FieldError naming its path (schedule.batches[0].cron).
func (s Schedule) Validate() error {
	var es errs
	s.check(&es)
	return es.join()
}

// check validates the schedule section, naming each bad field.
func (s Schedule) check(es *errs) {
	if s.CatchUp <= 0 {
		es.add("schedule.catch_up", fmt.Errorf("must be > 0 (how late a missed occurrence may still run), got %s", s.CatchUp))
	}
	if s.Lease < time.Second {
		es.add("schedule.lease", fmt.Errorf("must be >= 1s, got %s", s.Lease))
	}
	if s.History <= s.CatchUp {
		es.add("schedule.history", fmt.Errorf("must be longer than schedule.catch_up (%s), or an occurrence could run again once its done marker expires; got %s", s.CatchUp, s.History))
	}
	seen := map[string]int{}
	for i, b := range s.Batches {
		field := func(name string) string { return fmt.Sprintf("schedule.batches[%d].%s", i, name) }
		switch {
		case b.Name == "":
			es.add(field("name"), errors.New("required"))
		case !scheduleNamePattern.MatchString(b.Name):
			es.add(field("name"), fmt.Errorf("want 1-48 characters of A-Z a-z 0-9 . _ -; got %q", b.Name))
		default:
			if j, dup := seen[b.Name]; dup {
				es.add(field("name"), fmt.Errorf("%q is also the name of schedule.batches[%d]", b.Name, j))
			}
			seen[b.Name] = i
		}
		if sched, err := ParseCron(b.Cron); err != nil {
			es.add(field("cron"), err)
		} else if sched.Next(time.Now()).IsZero() {
			es.add(field("cron"), fmt.Errorf("never fires (a day that no month has?); got %q", b.Cron))
		}
		if _, err := b.Location(); err != nil {
			es.add(field("timezone"), err)
		}
		if b.Dir == "" {
			es.add(field("dir"), errors.New("required (the directory of the job files)"))
		}
		if err := checkSchedulePattern(b.File); err != nil {
			es.add(field("file"), err)
		}
		switch b.QueueName() {
		case QueueRealtime, QueueBulk, QueueRedrive:
		default:
			es.add(field("queue"), fmt.Errorf("unknown queue %q (want realtime, bulk or redrive)", b.Queue))
		}
	}
}

func checkSchedulePattern(p string) error {
	if p == "" {
		return nil
	}
	for _, ph := range schedulePlaceholders.FindAllString(p, -1) {
		if ph != "{date}" && ph != "{name}" {
			return fmt.Errorf("unknown placeholder %s (want {date} or {name}); got %q", ph, p)
		}
	}
	sample := strings.NewReplacer("{date}", "2026-11-25", "{name}", "x").Replace(p)
	if strings.ContainsAny(sample, "{}") {
		return fmt.Errorf("unbalanced { or }; got %q", p)
	}
	if !filepath.IsLocal(sample) || strings.HasSuffix(p, "/") {
		return fmt.Errorf("must be a file name within the batch's dir (no absolute path, no ..); got %q", p)
	}
	return nil
}

// ScheduledBatches is the list of scheduled batches. It decodes strictly:
// a key no ScheduledBatch field has is an error, as everywhere else in
// the file. In the environment it is JSON (UnmarshalText, MarshalText).
type ScheduledBatches []ScheduledBatch

// UnmarshalYAML decodes a list of batch mappings, refusing unknown keys.
// A string holding such a list as JSON or flow YAML is accepted too (what
// MarshalText writes).
func (bs *ScheduledBatches) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		return bs.UnmarshalText([]byte(n.Value))
	}
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("line %d: want a list of batches, got %s", n.Line, kindName(n))
	}
	t := reflect.TypeFor[ScheduledBatch]()
	var out ScheduledBatches
	for i, item := range n.Content {
		item = resolve(item)
		if item.Kind != yaml.MappingNode {
			return fmt.Errorf("line %d: [%d]: want a mapping (name, cron, dir, ...), got %s", item.Line, i, kindName(item))
		}
		for k := 0; k+1 < len(item.Content); k += 2 {
			key := resolve(item.Content[k])
			if _, ok := fieldByYAML(t, key.Value); ok {
				continue
			}
			hint := ""
			if s := suggest(key.Value, yamlKeys(t)); s != "" {
				hint = " (did you mean " + s + "?)"
			}
			return fmt.Errorf("line %d: [%d].%s: %w%s", key.Line, i, key.Value, ErrUnknownKey, hint)
		}
		var b ScheduledBatch
		if err := item.Decode(&b); err != nil {
			return fmt.Errorf("line %d: [%d]: %v", item.Line, i, yamlError(err))
		}
		out = append(out, b)
	}
	*bs = out
	return nil
}

// MarshalYAML writes the plain list, so a marshalled Config reads back.
func (bs ScheduledBatches) MarshalYAML() (any, error) {
	if len(bs) == 0 {
		return nil, nil
	}
	return []ScheduledBatch(bs), nil
}

// UnmarshalText reads the list as JSON (or flow YAML), as
// GATEWAYQ_SCHEDULE_BATCHES gives it. Empty text is no batches.
func (bs *ScheduledBatches) UnmarshalText(text []byte) error {
	if strings.TrimSpace(string(text)) == "" {
		*bs = nil
		return nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return fmt.Errorf("not a JSON list of batches: %v", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		*bs = nil
		return nil
	}
	root := resolve(doc.Content[0])
	if root.Kind == yaml.ScalarNode {
		// Guards against a string holding a string holding a list...
		return fmt.Errorf("want a JSON list of batches, e.g. [{\"name\":\"nightly\",\"cron\":\"30 1 * * *\",\"dir\":\"/data/in\"}], got %s", kindName(root))
	}
	return bs.UnmarshalYAML(root)
}

// MarshalText writes the list as one line of JSON; no batches is "".
func (bs ScheduledBatches) MarshalText() ([]byte, error) {
	if len(bs) == 0 {
		return nil, nil
	}
	return json.Marshal([]ScheduledBatch(bs))
}

// clone returns an independent copy (nil stays nil).
func (bs ScheduledBatches) clone() ScheduledBatches {
	if bs == nil {
		return nil
	}
	return append(ScheduledBatches(nil), bs...)
}
