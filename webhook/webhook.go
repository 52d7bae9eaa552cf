// Package webhook delivers signed event notifications to organizations'
// HTTP receivers from the durable outbox in the store.
//
// Enqueue only writes the event to the store, so a slow or dead receiver
// never holds up a recording. A Dispatcher's loop claims due deliveries with
// a lease (several nodes, or a restarted one, never lose an event and rarely
// send one twice), POSTs them signed with the endpoint's secret, and retries
// failures with capped exponential backoff and full jitter for RetryWindow.
// Receivers drop repeats by the Recsink-Event-Id header.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/recsink/recsink"
)

// Defaults of Config.
const (
	DefaultRetryWindow  = 24 * time.Hour
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = time.Hour
	DefaultPollInterval = time.Second
	DefaultSecretGrace  = 24 * time.Hour
)

// AttemptTimeout bounds one delivery attempt: connecting, sending and
// reading the receiver's status.
const AttemptTimeout = 10 * time.Second

const (
	// workers is the number of attempts in flight at once per Dispatcher.
	workers = 4
	// leaseMargin is added to AttemptTimeout for a claim's lease: the time
	// to record the attempt's result before another worker may take it.
	leaseMargin = 20 * time.Second
	// storeTimeout bounds the store writes that follow an attempt, which
	// run even while the Dispatcher stops.
	storeTimeout = 10 * time.Second
	// maxURLLength bounds an endpoint URL.
	maxURLLength = 2048
)

// Outcomes of a delivery attempt, as given to Observer.
const (
	OutcomeDelivered = "delivered" // the receiver answered 2xx
	OutcomeRetry     = "retry"     // failed; another attempt is scheduled
	OutcomeFailed    = "failed"    // failed after the retry window: given up
	OutcomeDisabled  = "disabled"  // the endpoint answered 410, or is disabled, removed or unsubscribed
)

// SecretBox seals signing secrets at rest; *secrets.Box implements it.
type SecretBox interface {
	Seal(plaintext, associatedData []byte) ([]byte, error)
	Open(ciphertext, associatedData []byte) ([]byte, error)
}

// Observer is told the outcome of every delivery attempt, for metrics. It
// must not block.
type Observer interface {
	Delivered(typ, outcome string)
}

// Config configures a Dispatcher. Store and Box are required.
type Config struct {
	Store  recsink.WebhookStore
	Box    SecretBox
	Logger *slog.Logger // nil means slog.Default()
	// AllowEndpoints lists host:port pairs that receivers may use even when
	// they resolve to private, loopback or link-local addresses (the
	// operator's --allow-endpoint list).
	AllowEndpoints []string
	// HTTPClient, when set, carries every delivery instead of the default
	// client, and then owns the private-address guard. The default refuses
	// non-public addresses except for AllowEndpoints, follows no redirects
	// and times out after AttemptTimeout.
	HTTPClient *http.Client
	// RetryWindow is how long a failing delivery is retried, from its
	// creation, before it is failed (default 24 h).
	RetryWindow time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts (defaults
	// 1 s and 1 h); it doubles per attempt, with full jitter above MinBackoff.
	MinBackoff, MaxBackoff time.Duration
	// PollInterval is how often the store is asked for due deliveries
	// (default 1 s); Enqueue also wakes the loop at once.
	PollInterval time.Duration
	// SecretGrace is how long the previous secret also signs after
	// RotateSecret (default 24 h).
	SecretGrace time.Duration
	Observer    Observer         // optional
	Now         func() time.Time // nil means time.Now
}

// Dispatcher sends the outbox's deliveries and manages endpoints. It is safe
// for concurrent use.
type Dispatcher struct {
	store       recsink.WebhookStore
	box         SecretBox
	logger      *slog.Logger
	allow       map[string]bool
	client      *http.Client
	retryWindow time.Duration
	minBackoff  time.Duration
	maxBackoff  time.Duration
	poll        time.Duration
	grace       time.Duration
	observer    Observer
	nowFunc     func() time.Time
	// lookupNetIP resolves receivers' hosts in SetEndpoint.
	lookupNetIP func(ctx context.Context, network, host string) ([]netip.Addr, error)

	wake chan struct{} // a pending wake-up of the loop

	mu     sync.Mutex
	cancel context.CancelFunc // of the running loop; nil when stopped
	done   chan struct{}      // closed when the running loop has returned
}

// New returns a Dispatcher configured by cfg. Call Start to deliver.
func New(cfg Config) *Dispatcher {
	d := &Dispatcher{
		store:       cfg.Store,
		box:         cfg.Box,
		logger:      cfg.Logger,
		allow:       make(map[string]bool),
		client:      cfg.HTTPClient,
		retryWindow: orDefault(cfg.RetryWindow, DefaultRetryWindow),
		minBackoff:  orDefault(cfg.MinBackoff, DefaultMinBackoff),
		maxBackoff:  orDefault(cfg.MaxBackoff, DefaultMaxBackoff),
		poll:        orDefault(cfg.PollInterval, DefaultPollInterval),
		grace:       orDefault(cfg.SecretGrace, DefaultSecretGrace),
		observer:    cfg.Observer,
		nowFunc:     cfg.Now,
		lookupNetIP: net.DefaultResolver.LookupNetIP,
		wake:        make(chan struct{}, 1),
	}
	if d.logger == nil {
		d.logger = slog.Default()
	}
	if d.nowFunc == nil {
		d.nowFunc = time.Now
	}
	d.maxBackoff = max(d.maxBackoff, d.minBackoff)
	for _, hp := range cfg.AllowEndpoints {
		d.allow[recsink.NormalizeHostPort(hp)] = true
	}
	if d.client == nil {
		d.client = newHTTPClient(d.allow)
	}
	return d
}

// orDefault returns v, or def when v is not positive.
func orDefault(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}

func (d *Dispatcher) now() time.Time {
	return d.nowFunc().UTC()
}

// Start starts the delivery loop, which runs until Stop or until ctx is
// cancelled. Starting a started Dispatcher does nothing.
func (d *Dispatcher) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cancel != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	d.cancel, d.done = cancel, done
	go func() {
		defer close(done)
		d.run(ctx)
	}()
	return nil
}

// Stop stops the delivery loop and waits for the attempts in flight, which
// finish (at most AttemptTimeout) and record their result rather than leave
// their delivery leased. Stopping a stopped Dispatcher does nothing; it may
// be started again.
func (d *Dispatcher) Stop() error {
	d.mu.Lock()
	cancel, done := d.cancel, d.done
	d.cancel, d.done = nil, nil
	d.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	return nil
}

// poke wakes the loop without blocking.
func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// run claims due deliveries while workers are free and hands each to a
// worker, until ctx is done; then it waits for the workers.
func (d *Dispatcher) run(ctx context.Context) {
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var lastErrLog time.Time
	for {
		// Only this loop fills sem, so free can only grow until we fill it.
		free := workers - len(sem)
		if free > 0 {
			// A claim that Stop interrupted could commit and yet not be
			// handed to workers, leaving its rows leased: a claim runs to
			// its end, and what it claimed is attempted.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
			now := d.now()
			ds, err := d.store.ClaimWebhookDeliveries(cctx, now, now.Add(AttemptTimeout+leaseMargin), free)
			cancel()
			for _, del := range ds {
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem; d.poke() }()
					d.attempt(ctx, del)
				})
			}
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				// The store is down: log once a minute, and poll again.
				if time.Since(lastErrLog) >= time.Minute {
					d.logger.Error("webhook: claim deliveries", "error", err)
					lastErrLog = time.Now()
				}
			case len(ds) == free:
				continue // more may be due
			}
		}
		timer.Reset(d.poll)
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// attempt sends one claimed delivery and records the result. The attempt
// and its bookkeeping are not cut short by Stop (ctx), only bounded in time,
// so that a result the receiver saw is not forgotten.
func (d *Dispatcher) attempt(ctx context.Context, del *recsink.WebhookDelivery) {
	ctx = context.WithoutCancel(ctx)
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	ep, err := d.store.FindWebhookEndpoint(sctx, del.OrgID)
	cancel()
	switch {
	case recsink.ErrorCode(err) == recsink.ENOTFOUND:
		d.disable(ctx, del, "the webhook endpoint was removed")
		return
	case err != nil:
		// The lease expires and the delivery is claimed again.
		d.logger.Error("webhook: find endpoint", "org", del.OrgID, "event", del.ID, "error", err)
		return
	case ep.DisabledAt != nil:
		d.disable(ctx, del, "the webhook endpoint is disabled")
		return
	case !subscribed(ep.Events, del.Type):
		d.disable(ctx, del, "the webhook endpoint is no longer subscribed to "+del.Type)
		return
	}

	status, msg := d.send(ctx, ep, del)
	now := d.now()
	del.Attempts++
	del.LastStatus, del.LastError = status, msg
	switch {
	case status >= 200 && status < 300:
		del.State, del.DeliveredAt, del.LastError = recsink.DeliveryDelivered, &now, ""
		if d.update(ctx, del) {
			d.observe(del.Type, OutcomeDelivered)
		}
	case status == http.StatusGone:
		// The receiver says the endpoint is gone for good (Stripe treats
		// 410 alike): stop sending to it until it is set again. The endpoint
		// first, so that no event is enqueued for it once this one reads
		// disabled.
		d.disableEndpoint(ctx, ep, del.ID, now)
		d.disable(ctx, del, "the receiver answered 410 Gone: the endpoint is disabled until it is set again")
	case now.Sub(del.CreatedAt) >= d.retryWindow:
		del.State = recsink.DeliveryFailed
		d.logger.Warn("webhook: giving up on delivery", "org", del.OrgID, "event", del.ID,
			"attempts", del.Attempts, "status", status, "error", msg)
		if d.update(ctx, del) {
			d.observe(del.Type, OutcomeFailed)
		}
	default:
		del.NextAttemptAt = now.Add(d.backoff(del.Attempts))
		// The receiver's failure, not ours: not an error in our log.
		d.logger.Info("webhook: delivery attempt failed", "org", del.OrgID, "event", del.ID,
			"attempts", del.Attempts, "status", status, "error", msg, "next", del.NextAttemptAt)
		if d.update(ctx, del) {
			d.observe(del.Type, OutcomeRetry)
		}
	}
}

// send POSTs del to ep and returns the receiver's status, or 0 and why
// there is none. Messages never contain the secret or the URL (whose query
// may hold the receiver's own token).
func (d *Dispatcher) send(ctx context.Context, ep *recsink.WebhookEndpoint, del *recsink.WebhookDelivery) (int, string) {
	now := d.now()
	secrets, err := d.signingSecrets(ep, now)
	if err != nil {
		d.logger.Error("webhook: open signing secret", "org", del.OrgID, "error", err)
		return 0, "internal error: cannot open the signing secret"
	}
	ctx, cancel := context.WithTimeout(ctx, AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(del.Payload))
	if err != nil {
		return 0, "invalid endpoint URL"
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "recsink-webhooks")
	req.Header.Set("Recsink-Event-Id", del.ID)
	req.Header.Set("Recsink-Event-Type", del.Type)
	req.Header.Set(SignatureHeader, signatureHeader(secrets, now, del.Payload))
	resp, err := d.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			if ue.Timeout() {
				return 0, fmt.Sprintf("no answer within %s", AttemptTimeout)
			}
			err = ue.Err
		}
		return 0, err.Error()
	}
	// Read a little of the body so that the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	msg := resp.Status
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		msg += ": redirects are not followed; set the endpoint to the final URL"
	}
	return resp.StatusCode, msg
}

// signingSecrets returns the endpoint's current secret and, during its
// grace, the previous one.
func (d *Dispatcher) signingSecrets(ep *recsink.WebhookEndpoint, now time.Time) ([]string, error) {
	cur, err := d.box.Open(ep.SecretCiphertext, ep.AssociatedData())
	if err != nil {
		return nil, err
	}
	secrets := []string{string(cur)}
	if ep.PreviousSecretCiphertext != nil && ep.PreviousSecretExpiresAt != nil && now.Before(*ep.PreviousSecretExpiresAt) {
		prev, err := d.box.Open(ep.PreviousSecretCiphertext, ep.AssociatedData())
		if err != nil {
			return nil, err
		}
		secrets = append(secrets, string(prev))
	}
	return secrets, nil
}

// disable records del as disabled.
func (d *Dispatcher) disable(ctx context.Context, del *recsink.WebhookDelivery, reason string) {
	del.State, del.LastError = recsink.DeliveryDisabled, reason
	if d.update(ctx, del) {
		d.observe(del.Type, OutcomeDisabled)
	}
}

// disableEndpoint marks ep disabled after a 410 and disables the
// organization's pending deliveries but the one being attempted (exceptID).
// It leaves alone an endpoint that was set again meanwhile.
func (d *Dispatcher) disableEndpoint(ctx context.Context, ep *recsink.WebhookEndpoint, exceptID string, now time.Time) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	cur, err := d.store.FindWebhookEndpoint(ctx, ep.OrgID)
	if err != nil {
		if recsink.ErrorCode(err) != recsink.ENOTFOUND {
			d.logger.Error("webhook: disable endpoint", "org", ep.OrgID, "error", err)
		}
		return
	}
	if cur.DisabledAt != nil || cur.URL != ep.URL || !cur.CreatedAt.Equal(ep.CreatedAt) {
		return
	}
	cur.DisabledAt, cur.UpdatedAt = &now, now
	if err := d.store.PutWebhookEndpoint(ctx, cur); err != nil {
		d.logger.Error("webhook: disable endpoint", "org", ep.OrgID, "error", err)
		return
	}
	d.logger.Info("webhook: endpoint disabled: the receiver answered 410 Gone", "org", ep.OrgID)
	d.disablePending(ctx, ep.OrgID, exceptID, "the webhook endpoint is disabled")
}

// disablePending marks the organization's pending deliveries disabled,
// but exceptID. A
// delivery that a worker holds may be saved again by that worker; the check
// before each attempt disables it then.
func (d *Dispatcher) disablePending(ctx context.Context, orgID, exceptID, reason string) {
	cursor := ""
	for {
		ds, next, err := d.store.ListWebhookDeliveries(ctx, orgID, cursor, 100)
		if err != nil {
			d.logger.Error("webhook: disable pending deliveries", "org", orgID, "error", err)
			return
		}
		for _, del := range ds {
			if del.State != recsink.DeliveryPending || del.ID == exceptID {
				continue
			}
			del.State, del.LastError = recsink.DeliveryDisabled, reason
			if err := d.store.UpdateWebhookDelivery(ctx, del); err != nil {
				d.logger.Error("webhook: disable pending deliveries", "org", orgID, "event", del.ID, "error", err)
				return
			}
			d.observe(del.Type, OutcomeDisabled)
		}
		if next == "" {
			return
		}
		cursor = next
	}
}

// update saves del and reports whether it was saved. On failure the lease
// expires and the delivery is attempted again.
func (d *Dispatcher) update(ctx context.Context, del *recsink.WebhookDelivery) bool {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if err := d.store.UpdateWebhookDelivery(ctx, del); err != nil {
		d.logger.Error("webhook: save delivery", "org", del.OrgID, "event", del.ID, "error", err)
		return false
	}
	return true
}

func (d *Dispatcher) observe(typ, outcome string) {
	if d.observer != nil {
		d.observer.Delivered(typ, outcome)
	}
}

// backoff returns the wait after the given number of failed attempts: a
// random duration between MinBackoff and MinBackoff·2^(attempts-1), capped
// at MaxBackoff. The jitter spreads retries of many events that failed
// together (a receiver's outage) over the window.
func (d *Dispatcher) backoff(attempts int) time.Duration {
	ceil := d.minBackoff
	for i := 1; i < attempts && ceil < d.maxBackoff; i++ {
		ceil *= 2
	}
	ceil = min(ceil, d.maxBackoff)
	if ceil <= d.minBackoff {
		return d.minBackoff
	}
	return d.minBackoff + rand.N(ceil-d.minBackoff+1)
}

// subscribed reports whether an endpoint with events receives typ; no
// events means every type.
func subscribed(events []string, typ string) bool {
	return len(events) == 0 || slices.Contains(events, typ)
}

// APIVersion is the apiVersion of every event: the version of the shape of
// its data, as in Whereby's webhook envelope.
const APIVersion = "1.0"

// event is the JSON body of a delivery: Whereby's envelope (id, apiVersion,
// createdAt, type, data).
type event struct {
	ID         string          `json:"id"`
	APIVersion string          `json:"apiVersion"`
	CreatedAt  recsink.APITime `json:"createdAt"`
	Type       string          `json:"type"`
	Data       any             `json:"data"`
}

// Enqueue adds an event of type typ with data to the outbox when the
// organization has an enabled endpoint subscribed to typ, and wakes the
// loop. It never waits on the network. An unknown type is EINVALID.
func (d *Dispatcher) Enqueue(ctx context.Context, orgID, typ string, data any) error {
	return d.EnqueueOnce(ctx, orgID, recsink.NewID("evt"), typ, data)
}

// EnqueueOnce is Enqueue with the event's ID given: an event whose ID is
// already in the outbox is not added again. An event that must be sent once
// however often it is reported (a recording finished; a key drained, seen by
// several nodes or again after a crash) gets an ID derived from what it is
// about, and receivers drop a repeat by that ID.
func (d *Dispatcher) EnqueueOnce(ctx context.Context, orgID, id, typ string, data any) error {
	if !slices.Contains(recsink.WebhookEventTypes, typ) {
		return recsink.Errorf(recsink.EINVALID, "unknown webhook event type %q", typ)
	}
	ep, err := d.store.FindWebhookEndpoint(ctx, orgID)
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		return nil
	} else if err != nil {
		return fmt.Errorf("webhook: enqueue %s for %s: %w", typ, orgID, err)
	}
	if ep.DisabledAt != nil || !subscribed(ep.Events, typ) {
		return nil
	}
	// Microseconds: the precision every store keeps.
	now := d.now().Truncate(time.Microsecond)
	payload, err := json.Marshal(event{ID: id, APIVersion: APIVersion, CreatedAt: recsink.APITime(now), Type: typ, Data: data})
	if err != nil {
		return fmt.Errorf("webhook: enqueue %s for %s: %w", typ, orgID, err)
	}
	del := &recsink.WebhookDelivery{
		ID: id, OrgID: orgID, Type: typ, Payload: payload,
		CreatedAt: now, State: recsink.DeliveryPending, NextAttemptAt: now,
	}
	if err := d.store.CreateWebhookDelivery(ctx, del); recsink.ErrorCode(err) == recsink.ECONFLICT {
		return nil // already in the outbox
	} else if err != nil {
		return fmt.Errorf("webhook: enqueue %s for %s: %w", typ, orgID, err)
	}
	d.poke()
	return nil
}

// SetEndpoint sets the organization's endpoint to rawURL, subscribed to
// events (none means every type, including types added later), and returns
// its new signing secret, which is shown once. It replaces an endpoint the
// organization had, with its secrets, and enables it again. A URL whose host
// resolves to a non-public address is EINVALID unless its host:port is in
// AllowEndpoints.
func (d *Dispatcher) SetEndpoint(ctx context.Context, orgID, rawURL string, events []string) (string, error) {
	rawURL = strings.TrimSpace(rawURL)
	if err := d.validateURL(ctx, rawURL); err != nil {
		return "", err
	}
	events, err := validateEvents(events)
	if err != nil {
		return "", err
	}
	now := d.now()
	ep := &recsink.WebhookEndpoint{OrgID: orgID, URL: rawURL, Events: events, CreatedAt: now, UpdatedAt: now}
	if old, err := d.store.FindWebhookEndpoint(ctx, orgID); err == nil {
		ep.CreatedAt = old.CreatedAt
	} else if recsink.ErrorCode(err) != recsink.ENOTFOUND {
		return "", fmt.Errorf("webhook: set endpoint of %s: %w", orgID, err)
	}
	secret := newSecret()
	if ep.SecretCiphertext, err = d.box.Seal([]byte(secret), ep.AssociatedData()); err != nil {
		return "", fmt.Errorf("webhook: set endpoint of %s: %w", orgID, err)
	}
	if err := d.store.PutWebhookEndpoint(ctx, ep); err != nil {
		return "", fmt.Errorf("webhook: set endpoint of %s: %w", orgID, err)
	}
	return secret, nil
}

// Endpoint returns the organization's endpoint; ENOTFOUND when it has none.
func (d *Dispatcher) Endpoint(ctx context.Context, orgID string) (*recsink.WebhookEndpoint, error) {
	ep, err := d.store.FindWebhookEndpoint(ctx, orgID)
	if err != nil {
		return nil, fmt.Errorf("webhook: endpoint of %s: %w", orgID, err)
	}
	if ep.PreviousSecretExpiresAt != nil && !d.now().Before(*ep.PreviousSecretExpiresAt) {
		ep.PreviousSecretCiphertext, ep.PreviousSecretExpiresAt = nil, nil
	}
	return ep, nil
}

// DeleteEndpoint deletes the organization's endpoint and disables its
// pending deliveries; ENOTFOUND when it has none.
func (d *Dispatcher) DeleteEndpoint(ctx context.Context, orgID string) error {
	if err := d.store.DeleteWebhookEndpoint(ctx, orgID); err != nil {
		return fmt.Errorf("webhook: delete endpoint of %s: %w", orgID, err)
	}
	// Were this to fail, each delivery is disabled before its next attempt.
	d.disablePending(ctx, orgID, "", "the webhook endpoint was removed")
	return nil
}

// RotateSecret gives the organization's endpoint a new signing secret and
// returns it; the current one also signs for SecretGrace, so that receivers
// can switch without losing events. A second rotation within the grace ends
// the grace of the oldest secret.
func (d *Dispatcher) RotateSecret(ctx context.Context, orgID string) (string, error) {
	ep, err := d.store.FindWebhookEndpoint(ctx, orgID)
	if err != nil {
		return "", fmt.Errorf("webhook: rotate secret of %s: %w", orgID, err)
	}
	secret := newSecret()
	sealed, err := d.box.Seal([]byte(secret), ep.AssociatedData())
	if err != nil {
		return "", fmt.Errorf("webhook: rotate secret of %s: %w", orgID, err)
	}
	now := d.now()
	expires := now.Add(d.grace)
	ep.PreviousSecretCiphertext, ep.PreviousSecretExpiresAt = ep.SecretCiphertext, &expires
	ep.SecretCiphertext, ep.UpdatedAt = sealed, now
	if err := d.store.PutWebhookEndpoint(ctx, ep); err != nil {
		return "", fmt.Errorf("webhook: rotate secret of %s: %w", orgID, err)
	}
	return secret, nil
}

// Deliveries pages through the organization's deliveries, newest first.
func (d *Dispatcher) Deliveries(ctx context.Context, orgID, cursor string, limit int) ([]*recsink.WebhookDelivery, string, error) {
	ds, next, err := d.store.ListWebhookDeliveries(ctx, orgID, cursor, limit)
	if err != nil {
		return nil, "", fmt.Errorf("webhook: deliveries of %s: %w", orgID, err)
	}
	return ds, next, nil
}

// newSecret returns a new signing secret.
func newSecret() string {
	return "whsec_" + recsink.RandomToken(32)
}

// validateURL checks an endpoint URL: http or https, a host, no user or
// fragment, and a host that resolves to public addresses only unless its
// host:port is allowed. The dialer checks the addresses again at each
// connection: names can re-resolve.
func (d *Dispatcher) validateURL(ctx context.Context, rawURL string) error {
	const example = "url must be an http:// or https:// URL such as https://example.com/recsink/webhooks"
	if rawURL == "" {
		return recsink.FieldErrorf("url", "url is required: the http:// or https:// URL that receives events")
	}
	if len(rawURL) > maxURLLength {
		return recsink.FieldErrorf("url", "url must be at most %d characters", maxURLLength)
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return recsink.FieldErrorf("url", "%s", example)
	}
	if u.User != nil || u.Fragment != "" {
		// The URL is shown back in the API: no passwords in it.
		return recsink.FieldErrorf("url", "url must not contain a user, password or #fragment")
	}
	hp, err := recsink.EndpointHostPort(u.Scheme + "://" + u.Host)
	if err != nil {
		return recsink.FieldErrorf("url", "url must have a host and an optional port from 1 to 65535")
	}
	if d.allow[hp] {
		return nil
	}
	host := u.Hostname()
	addrs := []netip.Addr{}
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = append(addrs, a)
	} else {
		addrs, err = d.lookupNetIP(ctx, "ip", host)
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			return recsink.FieldErrorf("url", "url host %s does not resolve", host)
		case err != nil:
			return recsink.Errorf(recsink.EUNAVAILABLE, "cannot resolve the url host %s now; try again later", host)
		}
	}
	for _, a := range addrs {
		if !recsink.IsPublicAddr(a) {
			return recsink.FieldErrorf("url", "url host %s is a private, loopback or link-local address, which receivers may not use on this server; the operator allows such receivers with --allow-endpoint %s", host, hp)
		}
	}
	return nil
}

// validateEvents checks that events are known types and returns them
// without repeats, never nil.
func validateEvents(events []string) ([]string, error) {
	out := []string{}
	for _, e := range events {
		if !slices.Contains(recsink.WebhookEventTypes, e) {
			return nil, recsink.FieldErrorf("events", "unknown event type %q: events must be among %s, or empty for all",
				e, strings.Join(recsink.WebhookEventTypes, ", "))
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out, nil
}
