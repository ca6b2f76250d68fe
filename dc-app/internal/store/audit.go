package store

import (
	"context"
	"encoding/json"
	"time"

	"gorm.io/gorm"
)

// AuditEvent is one recorded action: who did what to which synced space.
type AuditEvent struct {
	ID            string
	Actor         string
	Action        string
	SyncedSpaceID string
	Detail        map[string]string
	CreatedAt     time.Time
}

type auditRow struct {
	ID            string    `gorm:"column:id;primaryKey"`
	Actor         string    `gorm:"column:actor"`
	Action        string    `gorm:"column:action"`
	SyncedSpaceID string    `gorm:"column:synced_space_id"`
	Detail        string    `gorm:"column:detail"`
	CreatedAt     time.Time `gorm:"column:created_at;autoCreateTime:false"`
}

func (auditRow) TableName() string { return "audit_events" }

// writeAudit records an event inside the caller's transaction. detail must
// never hold a secret.
func writeAudit(tx *gorm.DB, now time.Time, actor, action, syncedSpaceID string, detail map[string]string) error {
	if detail == nil {
		detail = map[string]string{}
	}
	b, err := json.Marshal(detail)
	if err != nil {
		return err
	}
	return tx.Create(&auditRow{ID: newID(), Actor: actor, Action: action, SyncedSpaceID: syncedSpaceID, Detail: string(b), CreatedAt: now}).Error
}

// AuditEvents returns the recorded events, oldest first.
func (s *Store) AuditEvents(ctx context.Context) ([]AuditEvent, error) {
	var rows []auditRow
	if err := s.db.WithContext(ctx).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, translate(err)
	}
	out := make([]AuditEvent, len(rows))
	for i, r := range rows {
		var d map[string]string
		_ = json.Unmarshal([]byte(r.Detail), &d)
		out[i] = AuditEvent{ID: r.ID, Actor: r.Actor, Action: r.Action, SyncedSpaceID: r.SyncedSpaceID, Detail: d, CreatedAt: r.CreatedAt.UTC()}
	}
	return out, nil
}
