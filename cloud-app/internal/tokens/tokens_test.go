package tokens

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/token"
)

const issuer = "http://127.0.0.1:8081"

func testKeys(tb testing.TB) *token.KeySet {
	tb.Helper()
	ks, err := token.GenerateKeySet("k1")
	if err != nil {
		tb.Fatal(err)
	}
	return ks
}

func testRequest() Request {
	return Request{
		Tenant: &store.Tenant{ID: "t-1", ClientKey: "ck-1", BaseURL: "https://one.atlassian.net/wiki", DisplayURL: "https://wiki.one.example"},
		Sync: store.Sync{
			ID: "8c1f3c56-5d5e-4b8e-9d7e-2f1a0b4f1c11", TenantID: "t-1", SpaceID: "98", SpaceKey: "ENG", SpaceName: "Engineering",
			Name: "Engineering", Permissions: []store.Principal{{Type: store.PrincipalGroup, ID: "g1", Name: "admins"}},
			SyncComments: true, SyncLabels: false, Status: store.SyncNotSyncedYet,
		},
		Message:  "Import this, please.",
		Channel:  store.ChannelDownload,
		IssuedBy: "acc-admin",
	}
}

func TestMinter_Mint(t *testing.T) {
	keys := testKeys(t)
	now := time.Date(2026, 12, 3, 10, 0, 0, 500, time.UTC)
	m := NewMinter(keys, issuer, func() time.Time { return now })
	opener := &token.Opener{Keys: keys, Issuer: issuer, Now: func() time.Time { return now }}

	t.Run("OK", func(t *testing.T) {
		r := testRequest()
		got, err := m.Mint(r)
		if err != nil {
			t.Fatal(err)
		}
		c, err := opener.Open([]byte(got.Token))
		if err != nil {
			t.Fatalf("the minted token does not open: %v", err)
		}
		wantClaims := token.Claims{
			Version: token.Version, ID: got.Record.JTI, Issuer: issuer, Audience: token.Audience,
			IssuedAt: now.Truncate(time.Second), NotBefore: now.Truncate(time.Second), Expiry: now.Truncate(time.Second).Add(token.Lifetime),
			Site:  token.Site{ClientKey: "ck-1", BaseURL: "https://one.atlassian.net/wiki", DisplayURL: "https://wiki.one.example"},
			Space: token.Space{ID: "98", Key: "ENG", Name: "Engineering"},
			Sync: token.Sync{ID: r.Sync.ID, Name: "Engineering", Permissions: []token.Principal{{Type: "group", ID: "g1", Name: "admins"}},
				Comments: true, Labels: false},
			Message: "Import this, please.", RedemptionSecret: c.RedemptionSecret,
		}
		if !reflect.DeepEqual(*c, wantClaims) {
			t.Errorf("claims\n got %+v\nwant %+v", *c, wantClaims)
		}
		wantRec := store.TokenRecord{
			JTI: c.ID, TenantID: "t-1", SyncID: r.Sync.ID, KeyID: "k1", RSHash: store.SecretHash(c.RedemptionSecret),
			Channel: store.ChannelDownload, IssuedBy: "acc-admin", IssuedAt: c.IssuedAt, ExpiresAt: c.Expiry,
		}
		if got.Record != wantRec {
			t.Errorf("record\n got %+v\nwant %+v", got.Record, wantRec)
		}
		if got.FileName != "ENG-space-sync.token" {
			t.Errorf("file name %q", got.FileName)
		}
		if strings.Contains(got.Record.RSHash, c.RedemptionSecret) {
			t.Error("the record holds the redemption secret")
		}
	})

	t.Run("OK_EachMintIsNew", func(t *testing.T) {
		a, err1 := m.Mint(testRequest())
		b, err2 := m.Mint(testRequest())
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if a.Token == b.Token || a.Record.JTI == b.Record.JTI || a.Record.RSHash == b.Record.RSHash {
			t.Error("two mints share a token, a jti or a redemption secret")
		}
	})

	t.Run("OK_Email", func(t *testing.T) {
		r := testRequest()
		r.Channel, r.Recipient = store.ChannelEmail, "dc-admin@example.com"
		got, err := m.Mint(r)
		if err != nil || got.Record.Channel != store.ChannelEmail || got.Record.Recipient != "dc-admin@example.com" {
			t.Fatalf("got %+v, %v", got.Record, err)
		}
	})

	t.Run("ErrMessageTooLong", func(t *testing.T) {
		r := testRequest()
		r.Message = strings.Repeat("é", token.MaxMessageLength+1)
		_, err := m.Mint(r)
		var ae *apperr.Error
		if !errors.As(err, &ae) || ae.Code != apperr.ValidationFailed || ae.Fields["message"] == "" {
			t.Fatalf("err = %v; want validation_failed on message", err)
		}
		r.Message = strings.Repeat("é", token.MaxMessageLength)
		if _, err := m.Mint(r); err != nil {
			t.Errorf("a message of exactly the maximum: %v", err)
		}
	})

	t.Run("ErrCallerMistakes", func(t *testing.T) {
		for name, edit := range map[string]func(*Request){
			"other tenant": func(r *Request) {
				r.Tenant = &store.Tenant{ID: "t-2", ClientKey: "ck-2", BaseURL: "https://two.atlassian.net/wiki"}
			},
			"no tenant":        func(r *Request) { r.Tenant = nil },
			"no issuer":        func(r *Request) { r.IssuedBy = "" },
			"download with to": func(r *Request) { r.Recipient = "a@example.com" },
			"email without to": func(r *Request) { r.Channel = store.ChannelEmail },
			"unknown channel":  func(r *Request) { r.Channel = "fax" },
		} {
			r := testRequest()
			edit(&r)
			if got, err := m.Mint(r); err == nil || got.Token != "" {
				t.Errorf("%s: minted", name)
			}
		}
	})
}

func TestFileName(t *testing.T) {
	for key, want := range map[string]string{
		"ENG":                    "ENG-space-sync.token",
		"~5b1e2f":                "~5b1e2f-space-sync.token",
		"DÉV":                    "D_V-space-sync.token",
		"a/b\r\n":                "a_b__-space-sync.token",
		"":                       "space-space-sync.token",
		strings.Repeat("K", 300): strings.Repeat("K", 100) + "-space-sync.token",
	} {
		if got := FileName(key); got != want {
			t.Errorf("FileName(%q) = %q; want %q", key, got, want)
		}
	}
}
