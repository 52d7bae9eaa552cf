package recsink

import "time"

// APITimeLayout is how the API and the webhooks write a time: RFC 3339 in
// UTC with milliseconds ("2025-01-01T00:00:00.000Z"), Whereby's form. Go's
// default, with nanoseconds and a variable number of digits, is refused by
// strict ISO 8601 parsers.
const APITimeLayout = "2006-01-02T15:04:05.000Z07:00"

// APITime is a time.Time that marshals to JSON in APITimeLayout: the one
// time type of every JSON body recsink writes. It reads any RFC 3339 time.
type APITime time.Time

// MarshalJSON writes t in APITimeLayout, in UTC.
func (t APITime) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(APITimeLayout)+2)
	b = append(b, '"')
	b = time.Time(t).UTC().AppendFormat(b, APITimeLayout)
	return append(b, '"'), nil
}

// UnmarshalJSON reads an RFC 3339 time.
func (t *APITime) UnmarshalJSON(b []byte) error {
	var tt time.Time
	if err := tt.UnmarshalJSON(b); err != nil {
		return err
	}
	*t = APITime(tt)
	return nil
}

// Time returns t as a time.Time.
func (t APITime) Time() time.Time { return time.Time(t) }

// APITimeOf returns t as an *APITime, nil for nil.
func APITimeOf(t *time.Time) *APITime {
	if t == nil {
		return nil
	}
	a := APITime(*t)
	return &a
}

// TimePtr returns t as a *time.Time, nil for nil.
func (t *APITime) TimePtr() *time.Time {
	if t == nil {
		return nil
	}
	tt := time.Time(*t)
	return &tt
}
