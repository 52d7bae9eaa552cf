package http

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateLimiter is one token bucket per API key (by the key's hash, never the
// key): APIRate requests per second with bursts of APIBurst. Only requests
// that authenticated with an organization's API key are counted; ingest
// (authenticated by a recording's token) never is.
type rateLimiter struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	keys      map[string]*keyBucket
	lastSweep time.Time
}

type keyBucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	return &rateLimiter{limit: rate.Limit(perSecond), burst: max(burst, 1), keys: map[string]*keyBucket{}}
}

// wait returns 0 when the key may make a request now (and counts it), else
// how long until it may.
func (l *rateLimiter) wait(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b, ok := l.keys[key]
	if !ok {
		b = &keyBucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.keys[key] = b
	}
	b.last = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// sweep forgets, once a minute, the buckets of keys idle for long enough to
// be full again: a new bucket for them is the same, and memory stays
// bounded by the keys active in the last few minutes.
func (l *rateLimiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Minute {
		return
	}
	l.lastSweep = now
	full := time.Duration(float64(l.burst) / float64(l.limit) * float64(time.Second))
	idle := max(full, time.Minute)
	for k, b := range l.keys {
		if now.Sub(b.last) > idle {
			delete(l.keys, k)
		}
	}
}

// rateLimitedResponse is Whereby's body for 429: the error and, in data,
// the milliseconds until a request is taken again. Code is recsink's, as in
// its other errors.
type rateLimitedResponse struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	Data  struct {
		MsLeft int64 `json:"msLeft"`
	} `json:"data"`
}

// writeRateLimited answers 429 with Retry-After (whole seconds, rounded up)
// and Whereby's body.
func (l *rateLimiter) writeRateLimited(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10))
	var body rateLimitedResponse
	body.Error = fmt.Sprintf("rate limit exceeded for this API key: %g requests per second, bursts of %d; try again in %d ms", float64(l.limit), l.burst, d.Milliseconds()+1)
	body.Code = "rate_limited"
	body.Data.MsLeft = int64(math.Ceil(float64(d) / float64(time.Millisecond)))
	writeJSON(w, http.StatusTooManyRequests, body)
}
