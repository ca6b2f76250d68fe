package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"spacesync.io/shared/apperr"
)

func TestStore_CreateSync(t *testing.T) {
	fxEach(t, func(t *testing.T, e *fxEnv) {
		tenant := e.fxTenant("ck-1", "https://one.atlassian.net/wiki")
		t.Run("OK", func(t *testing.T) {
			perms := []Principal{{Type: PrincipalUser, ID: "acc-1", Name: "Ada"}}
			got, err := e.store.CreateSync(e.ctx, NewSync{
				TenantID: tenant, SpaceID: "98", SpaceKey: "ENG", SpaceName: "Engineering",
				Name: "  Engineering  ", Permissions: perms, SyncComments: true, SyncLabels: true, CreatedBy: "acc-admin",
			})
			if err != nil {
				t.Fatal(err)
			}
			want := Sync{
				ID: got.ID, TenantID: tenant, SpaceID: "98", SpaceKey: "ENG", SpaceName: "Engineering", Name: "Engineering",
				Permissions: perms, SyncComments: true, SyncLabels: true, Status: SyncNotSyncedYet, CreatedBy: "acc-admin",
				CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now(),
			}
			if diff := fxDiff(want, got); diff != "" {
				t.Errorf("CreateSync (-want +got):\n%s", diff)
			}
			read, err := e.store.GetSync(e.ctx, tenant, got.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := fxDiff(want, read); diff != "" {
				t.Errorf("GetSync after create (-want +got):\n%s", diff)
			}
			trail, err := e.store.AuditTrail(e.ctx, tenant, got.ID, 10)
			if err != nil || len(trail) != 1 || trail[0].Action != "sync.created" || trail[0].Actor != "acc-admin" {
				t.Errorf("audit trail = %+v, %v; want one sync.created by acc-admin", trail, err)
			}
		})
		t.Run("OK_NoPermissions", func(t *testing.T) {
			got, err := e.store.CreateSync(e.ctx, NewSync{TenantID: tenant, SpaceID: "1", SpaceKey: "X", Name: "x", CreatedBy: "a"})
			if err != nil || got.Permissions == nil || len(got.Permissions) != 0 {
				t.Errorf("got %+v, %v; want an empty, non-nil permission list", got.Permissions, err)
			}
		})
		many := make([]Principal, MaxSyncPermissions+1)
		for i := range many {
			many[i] = Principal{Type: PrincipalUser, ID: fmt.Sprint("acc-", i)}
		}
		for _, tc := range []struct {
			name  string
			edit  func(*NewSync)
			field string
		}{
			{"ErrNameEmpty", func(n *NewSync) { n.Name = "   " }, "name"},
			{"ErrNameTooLong", func(n *NewSync) { n.Name = strings.Repeat("é", MaxSyncNameLength+1) }, "name"},
			{"ErrNameControl", func(n *NewSync) { n.Name = "a\nb" }, "name"},
			{"ErrTooManyPermissions", func(n *NewSync) { n.Permissions = many }, "permissions"},
			{"ErrPermissionType", func(n *NewSync) { n.Permissions = []Principal{{Type: "role", ID: "r"}} }, "permissions"},
			{"ErrPermissionNoID", func(n *NewSync) { n.Permissions = []Principal{{Type: PrincipalGroup}} }, "permissions"},
			{"ErrPermissionTwice", func(n *NewSync) {
				n.Permissions = []Principal{{Type: PrincipalUser, ID: "a"}, {Type: PrincipalUser, ID: "a", Name: "again"}}
			}, "permissions"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				n := NewSync{TenantID: tenant, SpaceID: "98", SpaceKey: "BAD", SpaceName: "Bad", Name: "ok", CreatedBy: "acc"}
				tc.edit(&n)
				_, err := e.store.CreateSync(e.ctx, n)
				var ae *apperr.Error
				if !errors.As(err, &ae) || ae.Code != apperr.ValidationFailed || ae.Fields[tc.field] == "" {
					t.Fatalf("err = %v; want validation_failed on %q", err, tc.field)
				}
				if n := e.fxCount(`SELECT COUNT(*) FROM syncs WHERE space_key = 'BAD'`); n != 0 {
					t.Errorf("%d rows stored for refused input", n)
				}
			})
		}
		// The same input with exactly the maximum passes (twin of the
		// limits above).
		t.Run("OK_Limits", func(t *testing.T) {
			n := NewSync{TenantID: tenant, SpaceID: "98", SpaceKey: "MAX", Name: strings.Repeat("é", MaxSyncNameLength),
				Permissions: many[:MaxSyncPermissions], CreatedBy: "acc"}
			if _, err := e.store.CreateSync(e.ctx, n); err != nil {
				t.Fatal(err)
			}
		})
	})
}

func TestStore_GetSync(t *testing.T) {
	fxEach(t, func(t *testing.T, e *fxEnv) {
		a := e.fxTenant("ck-a", "https://a.atlassian.net/wiki")
		b := e.fxTenant("ck-b", "https://b.atlassian.net/wiki")
		s := e.fxSync(a, "ENG")
		if got, err := e.store.GetSync(e.ctx, a, s.ID); err != nil || got.ID != s.ID {
			t.Fatalf("own tenant: %v, %v", got.ID, err)
		}
		for name, args := range map[string][2]string{
			"ErrOtherTenant": {b, s.ID},
			"ErrUnknown":     {a, newRecordID()},
			"ErrNotAnID":     {a, "1 OR 1=1"},
		} {
			if _, err := e.store.GetSync(e.ctx, args[0], args[1]); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: err = %v; want ErrNotFound", name, err)
			}
		}
		if err := e.store.DeleteSync(e.ctx, a, s.ID, "acc"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.GetSync(e.ctx, a, s.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted: err = %v; want ErrNotFound", err)
		}
	})
}

func TestStore_ListSyncs(t *testing.T) {
	fxEach(t, func(t *testing.T, e *fxEnv) {
		a := e.fxTenant("ck-a", "https://a.atlassian.net/wiki")
		b := e.fxTenant("ck-b", "https://b.atlassian.net/wiki")
		s1 := e.fxSync(a, "ENG")
		e.clock.Add(time.Second)
		s2 := e.fxSync(a, "ENG")
		gone := e.fxSync(a, "ENG")
		e.fxSync(a, "OPS")
		e.fxSync(b, "ENG")
		if err := e.store.DeleteSync(e.ctx, a, gone.ID, "acc"); err != nil {
			t.Fatal(err)
		}
		got, err := e.store.ListSyncs(e.ctx, a, "ENG")
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range got {
			ids = append(ids, s.ID)
		}
		if diff := fxDiff([]string{s1.ID, s2.ID}, ids); diff != "" {
			t.Errorf("ListSyncs (-want +got):\n%s", diff)
		}
		is := e.fxIssue(s2)
		if _, _, err := e.store.Redeem(e.ctx, fxRedeemInput(is, "inst", fxLinkSecret(1))); err != nil {
			t.Fatal(err)
		}
		// The list names the instance a SYNCED sync is linked to, and only
		// on that sync.
		got, err = e.store.ListSyncs(e.ctx, a, "ENG")
		if err != nil || len(got) != 2 {
			t.Fatalf("ListSyncs after a redemption = %d syncs, %v", len(got), err)
		}
		if got[0].LinkedTo != nil || got[1].LinkedTo == nil || *got[1].LinkedTo != (Instance{ID: "inst", Name: "DC inst", BaseURL: "https://dc.example.com"}) {
			t.Errorf("LinkedTo = %+v / %+v; want nothing / DC inst", got[0].LinkedTo, got[1].LinkedTo)
		}
		counts, err := e.store.CountSyncsBySpace(e.ctx, a, []string{"ENG", "OPS", "NONE"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]SpaceSyncCounts{"ENG": {Total: 2, Synced: 1}, "OPS": {Total: 1}}
		if diff := fxDiff(want, counts); diff != "" {
			t.Errorf("CountSyncsBySpace (-want +got):\n%s", diff)
		}
	})
}

func TestStore_RevokeTokens(t *testing.T) {
	fxEach(t, func(t *testing.T, e *fxEnv) {
		a := e.fxTenant("ck-a", "https://a.atlassian.net/wiki")
		b := e.fxTenant("ck-b", "https://b.atlassian.net/wiki")
		s := e.fxSync(a, "ENG")
		t1, t2 := e.fxIssue(s), e.fxIssue(s)
		t.Run("ErrOtherTenant", func(t *testing.T) {
			if _, err := e.store.RevokeTokens(e.ctx, b, s.ID, "acc"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("err = %v; want ErrNotFound", err)
			}
			if err := e.store.CheckToken(e.ctx, t1.Claims); err != nil {
				t.Errorf("token after refused revoke: %v; want usable", err)
			}
		})
		t.Run("OK", func(t *testing.T) {
			n, err := e.store.RevokeTokens(e.ctx, a, s.ID, "acc")
			if err != nil || n != 2 {
				t.Fatalf("RevokeTokens = %d, %v; want 2", n, err)
			}
			for _, is := range []fxIssued{t1, t2} {
				if c := fxCode(e.store.CheckToken(e.ctx, is.Claims)); c != apperr.TokenRevoked {
					t.Errorf("CheckToken = %q; want token_revoked", c)
				}
			}
			if n, _ := e.store.RevokeTokens(e.ctx, a, s.ID, "acc"); n != 0 {
				t.Errorf("second revoke revoked %d; want 0", n)
			}
			// A token issued afterwards works.
			t3 := e.fxIssue(s)
			if err := e.store.CheckToken(e.ctx, t3.Claims); err != nil {
				t.Errorf("new token: %v", err)
			}
		})
	})
}

func TestStore_DeleteSync(t *testing.T) {
	fxEach(t, func(t *testing.T, e *fxEnv) {
		a := e.fxTenant("ck-a", "https://a.atlassian.net/wiki")
		b := e.fxTenant("ck-b", "https://b.atlassian.net/wiki")
		s := e.fxSync(a, "ENG")
		used := e.fxIssue(s)
		link, _, err := e.store.Redeem(e.ctx, fxRedeemInput(used, "inst", fxLinkSecret(1)))
		if err != nil {
			t.Fatal(err)
		}
		// Tokens issued before the link was made were superseded; this one
		// is issued on another sync to check it is left alone.
		other := e.fxSync(a, "ENG")
		otherTok := e.fxIssue(other)
		if err := e.store.DeleteSync(e.ctx, b, s.ID, "acc"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("other tenant: err = %v; want ErrNotFound", err)
		}
		if err := e.store.DeleteSync(e.ctx, a, s.ID, "acc"); err != nil {
			t.Fatal(err)
		}
		got, err := e.store.LinkBySecret(e.ctx, fxLinkSecret(1))
		if err != nil || got.ID != link.ID || got.Status != LinkUnlinked || got.UnlinkedAt == nil {
			t.Errorf("link after delete = %+v, %v; want unlinked", got, err)
		}
		if c := fxCode(e.store.CheckToken(e.ctx, used.Claims)); c != apperr.SyncDeleted {
			t.Errorf("CheckToken = %q; want sync_deleted", c)
		}
		if err := e.store.CheckToken(e.ctx, otherTok.Claims); err != nil {
			t.Errorf("other sync's token: %v; want usable", err)
		}
		if err := e.store.DeleteSync(e.ctx, a, s.ID, "acc"); !errors.Is(err, ErrNotFound) {
			t.Errorf("second delete: err = %v; want ErrNotFound", err)
		}
	})
}

func TestStore_DeleteSync_RevokesOutstanding(t *testing.T) {
	fxEach(t, func(t *testing.T, e *fxEnv) {
		a := e.fxTenant("ck-a", "https://a.atlassian.net/wiki")
		s := e.fxSync(a, "ENG")
		is := e.fxIssue(s)
		e.clock.Add(time.Second)
		if err := e.store.DeleteSync(e.ctx, a, s.ID, "acc"); err != nil {
			t.Fatal(err)
		}
		var reason string
		if err := e.db.Raw(`SELECT revoke_reason FROM tokens WHERE jti = ?`, is.Record.JTI).Scan(&reason).Error; err != nil || reason != RevokeSyncDeleted {
			t.Errorf("revoke_reason = %q, %v; want %q", reason, err, RevokeSyncDeleted)
		}
		trail, _ := e.store.AuditTrail(e.ctx, a, s.ID, 0)
		if len(trail) == 0 || trail[0].Action != "sync.deleted" || trail[0].Detail["tokensRevoked"] != float64(1) {
			t.Errorf("newest audit event = %+v; want sync.deleted with tokensRevoked 1", trail)
		}
	})
}
