package storetest

import (
	"context"
	"testing"

	"github.com/recsink/recsink"
)

// testSigningKey: a new key retires the current one at its creation time;
// the list is newest first; only keys retired before the cut are deleted.
func testSigningKey(t *testing.T, open func(t *testing.T) recsink.Store) {
	s, ctx := open(t), context.Background()
	if ks, err := s.ListSigningKeys(ctx); err != nil || len(ks) != 0 {
		t.Fatalf("ListSigningKeys on an empty store = %v, %v", ks, err)
	}
	a := &recsink.SigningKey{ID: recsink.NewID("kid"), Algorithm: "RS256", PrivateCiphertext: []byte("sealed-a"), CreatedAt: at(0)}
	b := &recsink.SigningKey{ID: recsink.NewID("kid"), Algorithm: "RS256", PrivateCiphertext: []byte("sealed-b"), CreatedAt: at(3600)}
	for _, k := range []*recsink.SigningKey{a, b} {
		if err := s.CreateSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateSigningKey(ctx, a); recsink.ErrorCode(err) != recsink.ECONFLICT {
		t.Fatalf("CreateSigningKey of an existing ID = %v, want ECONFLICT", err)
	}
	ks, err := s.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 2 || ks[0].ID != b.ID || ks[1].ID != a.ID {
		t.Fatalf("ListSigningKeys = %v, want b then a", ks)
	}
	if ks[0].RetiredAt != nil || string(ks[0].PrivateCiphertext) != "sealed-b" || ks[0].Algorithm != "RS256" || !ks[0].CreatedAt.Equal(b.CreatedAt) {
		t.Fatalf("current key = %+v", ks[0])
	}
	if ks[1].RetiredAt == nil || !ks[1].RetiredAt.Equal(b.CreatedAt) {
		t.Fatalf("retired key's RetiredAt = %v, want %v", ks[1].RetiredAt, b.CreatedAt)
	}
	if err := s.DeleteSigningKeys(ctx, at(3600)); err != nil {
		t.Fatal(err)
	}
	if ks, _ := s.ListSigningKeys(ctx); len(ks) != 2 {
		t.Fatalf("DeleteSigningKeys at the retirement time deleted: %d left", len(ks))
	}
	if err := s.DeleteSigningKeys(ctx, at(3601)); err != nil {
		t.Fatal(err)
	}
	if ks, _ := s.ListSigningKeys(ctx); len(ks) != 1 || ks[0].ID != b.ID {
		t.Fatalf("after DeleteSigningKeys: %v, want only the current key", ks)
	}
}
