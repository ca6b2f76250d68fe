package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// Actors that are not Atlassian account ids.
const (
	// ActorSystem is cloud-app itself (workers, lifecycle).
	ActorSystem = "system"
	// actorInstancePrefix marks a dc-app instance, by its instance id.
	actorInstancePrefix = "dc-app:"
)

// InstanceActor is the audit actor for a dc-app instance.
func InstanceActor(instanceID string) string { return actorInstancePrefix + instanceID }

// AuditEvent is one audit record.
type AuditEvent struct {
	ID       string
	TenantID string
	SyncID   string
	// Actor is an Atlassian account id, InstanceActor(id) or ActorSystem.
	Actor string
	// Action names what happened, such as "sync.created", "token.issued",
	// "tokens.revoked", "sync.deleted", "link.created", "link.unlinked".
	Action    string
	Detail    map[string]any
	CreatedAt time.Time
}

// auditRow is the GORM shape of an audit_events row.
type auditRow struct {
	ID        string `gorm:"primaryKey"`
	TenantID  string
	SyncID    string
	Actor     string
	Action    string
	Detail    string
	CreatedAt time.Time
}

func (auditRow) TableName() string { return "audit_events" }

// secretDetailKey reports whether an audit detail key names something that
// must never be stored: the record is meant to be read by people.
func secretDetailKey(k string) bool {
	l := strings.ToLower(k)
	return l == "token" || l == "rs" || strings.Contains(l, "secret") || strings.Contains(l, "password") ||
		strings.Contains(l, "jwt") || strings.Contains(l, "sealed")
}

// audit writes an audit record inside tx, stamped with the transaction's
// "now" (see txNow). detail must never hold a secret: keys that look like
// one (token, rs, *secret*, *password*, *jwt*, *sealed*) are refused with an
// error, which rolls the transaction back, so a mistake shows in tests
// rather than in the database.
func audit(tx *gorm.DB, tenantID, syncID, actor, action string, detail map[string]any) error {
	for k := range detail {
		if secretDetailKey(k) {
			return fmt.Errorf("store: audit %s: detail key %q looks like a secret", action, k)
		}
	}
	if detail == nil {
		detail = map[string]any{}
	}
	b, err := json.Marshal(detail)
	if err != nil {
		return fmt.Errorf("store: audit %s: %w", action, err)
	}
	// A version 7 UUID is time-ordered (and monotonic within the process),
	// so records written in the same instant keep their order.
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("store: audit %s: %w", action, err)
	}
	return tx.Create(&auditRow{
		ID: id.String(), TenantID: tenantID, SyncID: syncID, Actor: actor, Action: action,
		Detail: string(b), CreatedAt: txTime(tx),
	}).Error
}

// AuditTrail returns the newest audit records of a sync of the tenant, at
// most limit (1 to 500; 100 when out of range), newest first. A sync of
// another tenant has no records here.
func (s *Store) AuditTrail(ctx context.Context, tenantID, syncID string, limit int) ([]AuditEvent, error) {
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	var out []AuditEvent
	err := s.txNow(ctx, func(tx *gorm.DB, _ time.Time) error {
		var rows []auditRow
		if err := tx.Where("tenant_id = ? AND sync_id = ?", tenantID, syncID).
			Order("created_at DESC, id DESC").Limit(limit).Find(&rows).Error; err != nil {
			return err
		}
		out = make([]AuditEvent, len(rows))
		for i, r := range rows {
			var d map[string]any
			if err := json.Unmarshal([]byte(r.Detail), &d); err != nil {
				return fmt.Errorf("store: audit event %s: %w", r.ID, err)
			}
			out[i] = AuditEvent{ID: r.ID, TenantID: r.TenantID, SyncID: r.SyncID, Actor: r.Actor,
				Action: r.Action, Detail: d, CreatedAt: r.CreatedAt.UTC()}
		}
		return nil
	})
	return out, err
}
