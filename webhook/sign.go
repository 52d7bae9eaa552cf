package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader is the header that carries a delivery's signatures:
// "t=<unix seconds>,v1=<hex>" with a second v1 while a rotated secret's
// predecessor still signs.
const SignatureHeader = "Recsink-Signature"

// DefaultTolerance is the clock difference a receiver should accept between
// a signature's timestamp and its own clock, to refuse replays of old
// deliveries.
const DefaultTolerance = 5 * time.Minute

// Errors returned by Verify.
var (
	ErrInvalidHeader      = errors.New("webhook: signature header is malformed: want t=<unix>,v1=<hex>")
	ErrSignatureMismatch  = errors.New("webhook: no signature matches the body and secret")
	ErrTimestampTolerance = errors.New("webhook: signature timestamp is outside the tolerance")
)

// Sign returns the v1 signature of body sent at t: the hex HMAC-SHA256 of
// "<unix seconds of t>.<body>" keyed with the whole secret ("whsec_...").
func Sign(secret string, t time.Time, body []byte) string {
	return sign(secret, strconv.FormatInt(t.Unix(), 10), body)
}

func sign(secret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// signatureHeader returns the header value for body sent at t, with one v1
// per secret.
func signatureHeader(secrets []string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=" + ts)
	for _, s := range secrets {
		b.WriteString(",v1=" + sign(s, ts, body))
	}
	return b.String()
}

// Verify checks a Recsink-Signature header for receivers: one of its v1
// signatures must be body's signature with secret (compared in constant
// time), and its timestamp must be within tolerance of now either way.
// Elements other than t and v1 are ignored, so that new schemes can be added
// beside v1.
func Verify(header string, body []byte, secret string, tolerance time.Duration, now time.Time) error {
	var timestamp string
	var sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrInvalidHeader
		}
		switch k {
		case "t":
			if timestamp != "" {
				return ErrInvalidHeader
			}
			timestamp = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	unix, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrInvalidHeader
	}
	want := []byte(sign(secret, timestamp, body))
	match := false
	for _, s := range sigs {
		// Every candidate is compared, so the time taken does not tell which
		// one matched.
		if hmac.Equal([]byte(s), want) {
			match = true
		}
	}
	if !match {
		return ErrSignatureMismatch
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return ErrTimestampTolerance
	}
	return nil
}
