// Package feed is the event feed: one reader per process follows
// task_events across every task and tenant, in id order, and hands each new
// event to the subscribers it matches, so that a thousand open event
// streams cost the database one reader instead of a thousand pollers.
//
// The reader wakes when the store signals a commit that wrote events (see
// Feed.Start) and on a slow fallback tick, for a signal lost or events
// written by a process that cannot signal this one. Each wake reads the
// events after the last id it delivered, in bounded batches, until it has
// caught up.
//
// Ids are taken at insert: on PostgreSQL a row can commit after rows with
// larger ids. The reader therefore delivers only a gap-free run of ids: at
// a missing id it stops and reads again shortly, until the row appears or
// the gap is older than Config.GapWait, when it is taken for an insert that
// rolled back (or an event deleted with its task) and skipped. So a
// subscriber sees every event exactly once, in id order; an event whose
// transaction stays open longer than GapWait after taking its id is the one
// that a live subscriber can miss (it is still in the task's history).
package feed

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/commonops/commonops"
	"github.com/commonops/commonops/internal/startstop"
)

// Defaults of Config.
const (
	// PollDefault is the fallback tick of the reader.
	PollDefault = time.Second
	// GapWaitDefault is how long the reader waits for a missing id.
	GapWaitDefault = time.Second
	// BatchDefault bounds one read.
	BatchDefault = 500
	// BufferDefault is a subscription's buffer of undelivered events: two
	// reads (BatchDefault), so a subscriber that keeps up is not cut off
	// because the reader delivered one full batch at once (a busy queue
	// writes thousands of events a second, and the reader takes them in
	// batches after a gap or a slow read). The buffer holds pointers: 8 KB
	// a subscription.
	BufferDefault = 2 * BatchDefault
)

// gapRetry is how soon the reader reads again while a gap is open: the
// transaction that holds the missing id is most likely about to commit.
const gapRetry = 20 * time.Millisecond

// ErrStopped is the error of Subscribe on a feed that is not running.
var ErrStopped = &commonops.Error{Code: commonops.EUNAVAILABLE, Message: "the event feed is not running"}

// Source is what the feed reads: store.Store's ListEventsAfter.
type Source interface {
	ListEventsAfter(ctx context.Context, afterID int64, limit int) ([]commonops.Event, int64, error)
}

// committer is a Source that can wake each of its readers after a commit
// that wrote events (both drivers: CommitSignal). The store's OutboxSignal
// is not an alternative: its one channel is the outbox relay's, and a second
// reader would take wake-ups the relay needs.
type committer interface {
	CommitSignal() (signal <-chan struct{}, stop func())
}

// Config tunes a Feed. Zero fields take their defaults.
type Config struct {
	// Poll is the fallback tick: how often the reader looks for events when
	// no commit signal came. Defaults to PollDefault (1s).
	Poll time.Duration
	// GapWait is how long the reader holds back at a missing id before it
	// takes it for a rolled-back insert. Defaults to GapWaitDefault (1s).
	GapWait time.Duration
	// Batch bounds the events of one read. Defaults to BatchDefault (500).
	Batch int
	// Logger receives read failures. Defaults to slog.Default().
	Logger *slog.Logger
}

// Filter selects the events of a subscription: those of TenantID and, when
// set, of TaskID only, that Match (when set) accepts.
type Filter struct {
	TenantID string
	TaskID   string
	// Match, when set, is called for each event of the tenant (and task)
	// by the reader: it must be quick and must not block.
	Match func(commonops.Event) bool
}

// Feed is the one event reader of a process. Use New, then Start.
type Feed struct {
	src  Source
	cfg  Config
	life startstop.Lifecycle

	mu      sync.Mutex
	running bool
	ready   chan struct{} // closed once the reader knows where it starts
	last    int64         // every event up to last was delivered (or skipped)
	byTask  map[taskKey]map[*Subscription]struct{}
	byAll   map[string]map[*Subscription]struct{} // tenant-wide subscriptions
	count   int
	woken   chan struct{} // a first subscriber after idle: read at once

	gapSince time.Time // when the reader first stopped at last+1; zero: no gap
}

type taskKey struct{ tenant, task string }

// New returns a feed of src, not yet running.
func New(src Source, cfg Config) *Feed {
	if cfg.Poll <= 0 {
		cfg.Poll = PollDefault
	}
	if cfg.GapWait <= 0 {
		cfg.GapWait = GapWaitDefault
	}
	if cfg.Batch <= 0 {
		cfg.Batch = BatchDefault
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Feed{src: src, cfg: cfg, ready: make(chan struct{}), woken: make(chan struct{}, 1)}
}

// Start runs the reader until ctx ends or Stop is called, and returns at
// once; it does nothing on a running feed. The reader starts at the newest
// event: subscribers replay older ones from the store themselves. (On
// PostgreSQL an event whose transaction was still open at that instant, with
// an id below the newest, is not fed: a start-up window of milliseconds.)
func (f *Feed) Start(ctx context.Context) {
	runCtx, stopped, ok := f.life.StartInit(ctx)
	if !ok {
		return
	}
	f.mu.Lock()
	f.running, f.ready = true, make(chan struct{})
	f.mu.Unlock()
	go func() {
		defer stopped()
		f.run(runCtx)
	}()
}

// Stop ends the reader and waits for it. Every subscription is then lost
// (see Subscription.Lost).
func (f *Feed) Stop() { f.life.Stop() }

// Subscribers reports how many subscriptions are open.
func (f *Feed) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count
}

// Subscribe registers a subscription to the events filter selects, with a
// buffer of buffer events (BufferDefault when 0 or less). It waits, within
// ctx, until the reader knows where it starts; ErrStopped when the feed is
// not running, EUNAVAILABLE when ctx ends first. The subscription receives
// every matching event with an id above its From, in id order.
func (f *Feed) Subscribe(ctx context.Context, filter Filter, buffer int) (*Subscription, error) {
	if buffer <= 0 {
		buffer = BufferDefault
	}
	f.mu.Lock()
	running, ready := f.running, f.ready
	f.mu.Unlock()
	if !running {
		return nil, ErrStopped
	}
	select {
	case <-ready:
	case <-ctx.Done():
		return nil, &commonops.Error{Code: commonops.EUNAVAILABLE, Message: "the event feed has not started yet", Err: ctx.Err()}
	}
	s := &Subscription{f: f, filter: filter, events: make(chan *commonops.Event, buffer), lost: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.running {
		return nil, ErrStopped
	}
	s.from = f.last
	f.add(s)
	return s, nil
}

// add indexes s; f.mu is held.
func (f *Feed) add(s *Subscription) {
	if s.filter.TaskID != "" {
		if f.byTask == nil {
			f.byTask = map[taskKey]map[*Subscription]struct{}{}
		}
		k := taskKey{s.filter.TenantID, s.filter.TaskID}
		if f.byTask[k] == nil {
			f.byTask[k] = map[*Subscription]struct{}{}
		}
		f.byTask[k][s] = struct{}{}
	} else {
		if f.byAll == nil {
			f.byAll = map[string]map[*Subscription]struct{}{}
		}
		if f.byAll[s.filter.TenantID] == nil {
			f.byAll[s.filter.TenantID] = map[*Subscription]struct{}{}
		}
		f.byAll[s.filter.TenantID][s] = struct{}{}
	}
	f.count++
	if f.count == 1 {
		select {
		case f.woken <- struct{}{}:
		default:
		}
	}
}

// remove unindexes s and reports whether it was indexed; f.mu is held.
func (f *Feed) remove(s *Subscription) bool {
	if s.filter.TaskID != "" {
		k := taskKey{s.filter.TenantID, s.filter.TaskID}
		if _, ok := f.byTask[k][s]; !ok {
			return false
		}
		delete(f.byTask[k], s)
		if len(f.byTask[k]) == 0 {
			delete(f.byTask, k)
		}
	} else {
		if _, ok := f.byAll[s.filter.TenantID][s]; !ok {
			return false
		}
		delete(f.byAll[s.filter.TenantID], s)
		if len(f.byAll[s.filter.TenantID]) == 0 {
			delete(f.byAll, s.filter.TenantID)
		}
	}
	f.count--
	return true
}

func (f *Feed) run(ctx context.Context) {
	var signal <-chan struct{}
	if c, ok := f.src.(committer); ok {
		sig, stop := c.CommitSignal()
		defer stop()
		signal = sig
	}
	defer f.shutdown()
	if !f.start(ctx) {
		return
	}
	tick := time.NewTicker(f.cfg.Poll)
	defer tick.Stop()
	retry := time.NewTimer(0)
	<-retry.C
	for {
		ticked := false
		select {
		case <-ctx.Done():
			return
		case <-signal:
		case <-f.woken:
		case <-tick.C:
			ticked = true
		case <-retry.C:
		}
		if f.idle() {
			// Nobody listens: reading every event would only load the
			// database (a busy queue commits thousands a second). Keep the
			// position current once a tick instead; a first subscriber
			// then starts at most a tick behind.
			if ticked {
				f.skipToNewest(ctx)
			}
			continue
		}
		if f.poll(ctx) {
			retry.Reset(gapRetry)
		}
	}
}

// idle reports whether the feed has no subscriber.
func (f *Feed) idle() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count == 0
}

// skipToNewest moves the position of an idle feed to the newest event, with
// one read of the largest event id.
func (f *Feed) skipToNewest(ctx context.Context) {
	_, last, err := f.src.ListEventsAfter(ctx, math.MaxInt64, 1)
	if err != nil {
		return // the next tick tries again; a subscriber reads from the old position
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.count == 0 && last > f.last {
		f.last = last
	}
}

// start finds the newest event, retrying until ctx ends, and opens the
// feed to subscribers.
func (f *Feed) start(ctx context.Context) bool {
	for wait := f.cfg.Poll; ; {
		_, last, err := f.src.ListEventsAfter(ctx, math.MaxInt64, 1)
		if err == nil {
			f.mu.Lock()
			f.last = last
			close(f.ready)
			f.mu.Unlock()
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		f.cfg.Logger.Warn("event feed: cannot find the newest event; retrying", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}

// shutdown loses every subscription: the feed no longer serves them.
func (f *Feed) shutdown() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running = false
	for _, subs := range f.byTask {
		for s := range subs {
			s.lose()
		}
	}
	for _, subs := range f.byAll {
		for s := range subs {
			s.lose()
		}
	}
	f.byTask, f.byAll, f.count = nil, nil, 0
}

// poll reads and delivers the events after f.last until it has caught up,
// and reports whether it stopped at a gap that may still fill.
func (f *Feed) poll(ctx context.Context) (gap bool) {
	for {
		f.mu.Lock()
		after := f.last
		f.mu.Unlock()
		events, _, err := f.src.ListEventsAfter(ctx, after, f.cfg.Batch)
		if err != nil {
			if ctx.Err() == nil {
				f.cfg.Logger.Warn("event feed: read failed; trying again at the next signal or tick", "after", after, "err", err)
			}
			return false
		}
		if f.deliver(events, time.Now()) {
			return true
		}
		if len(events) < f.cfg.Batch {
			return false
		}
	}
}

// deliver hands events (in id order, all above f.last) to their
// subscribers, up to the first gap that may still fill, and reports whether
// it stopped at one. Delivery and the move of f.last happen under f.mu, so
// a Subscribe sees either an event delivered to it or its id above From.
func (f *Feed) deliver(events []commonops.Event, now time.Time) (gap bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range events {
		e := &events[i] // shared by every subscriber: read-only
		if e.ID <= f.last {
			continue
		}
		if e.ID != f.last+1 {
			if f.gapSince.IsZero() {
				f.gapSince = now
			}
			if now.Sub(f.gapSince) < f.cfg.GapWait {
				return true
			}
			// Never filled: an insert that rolled back, or an event deleted
			// with its task.
		}
		f.gapSince = time.Time{}
		for s := range f.byTask[taskKey{e.TenantID, e.TaskID}] {
			f.send(s, e)
		}
		for s := range f.byAll[e.TenantID] {
			f.send(s, e)
		}
		f.last = e.ID
	}
	return false
}

// send hands e to s if its filter's Match accepts it, without blocking; a
// subscriber whose buffer is full is cut off (it resumes from the store).
// f.mu is held.
func (f *Feed) send(s *Subscription, e *commonops.Event) {
	if s.filter.Match != nil && !s.filter.Match(*e) {
		return
	}
	select {
	case s.events <- e:
	default:
		f.remove(s)
		s.lose()
	}
}

// Subscription is one subscriber's share of the feed.
type Subscription struct {
	f      *Feed
	filter Filter
	from   int64
	events chan *commonops.Event
	lost   chan struct{}
	once   sync.Once
}

// From is the id the subscription starts after: every matching event with a
// larger id comes through Events, none with a smaller one. A subscriber
// reads the events up to From from the store.
func (s *Subscription) From() int64 { return s.from }

// Events receives the subscription's events in id order. They are shared
// with every other subscriber: read them, never change them. It is never
// closed: select on Lost as well.
func (s *Subscription) Events() <-chan *commonops.Event { return s.events }

// Lost is closed when the feed stops serving the subscription: its buffer
// was full (a slow reader) or the feed stopped. Events already buffered may
// be incomplete after it; the subscriber resumes from the store after the
// last event it handled.
func (s *Subscription) Lost() <-chan struct{} { return s.lost }

// Close ends the subscription. It is safe to call more than once.
func (s *Subscription) Close() {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.remove(s)
}

func (s *Subscription) lose() { s.once.Do(func() { close(s.lost) }) }
