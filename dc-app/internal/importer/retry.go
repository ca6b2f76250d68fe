package importer

import (
	"context"
	"errors"
	"sync"
	"time"

	"spacesync.io/dc-app/internal/cloud"
	"spacesync.io/dc-app/internal/store"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/protocol"
)

// retryActor is the audit actor of the background retry.
const retryActor = "system:retry"

// RunRetrier repeats the redemptions of pending imports until Cloud gives
// a definite answer: once at start (imports left pending by a previous run
// or another replica), then every Retry.Every. At most Retry.Workers
// redemptions run at once. It returns when ctx is done, after the attempts
// in flight have finished or been cancelled.
func (s *Service) RunRetrier(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.RetryDue(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("retry pending imports", "err", err)
		}
		t.Reset(s.cfg.Retry.Every)
	}
}

// RetryDue makes one attempt for every pending import that is due, and
// returns how many it attempted.
func (s *Service) RetryDue(ctx context.Context) (int, error) {
	w := s.cfg.Retry.Workers
	claims, err := s.store.ClaimDue(ctx, w*4, s.cfg.Retry.Lease)
	if err != nil {
		return 0, err
	}
	sem := make(chan struct{}, w)
	var wg sync.WaitGroup
	for _, r := range claims {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.retryOne(ctx, r)
		}()
	}
	wg.Wait()
	return len(claims), nil
}

// retryOne repeats one redemption exactly as first sent (same token,
// instance, name, link secret and expect) and records the outcome.
func (s *Service) retryOne(ctx context.Context, r store.Redemption) {
	sp := r.Space
	log := s.log.With("synced_space", sp.ID, "attempt", sp.Attempts)
	// Store writes must land even when shutdown cancels the call.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	base, ok := s.trustedCloud(sp.CloudURL)
	if !ok {
		log.Warn("pending import names a cloud-app that is no longer trusted")
		if err := s.store.Fail(wctx, sp.ID, retryActor, "The cloud-app "+sp.CloudURL+" is no longer in DC_APP_TRUSTED_CLOUD_URLS, so this import cannot be confirmed. Remove it."); err != nil {
			log.Error("mark import failed", "err", err)
		}
		return
	}
	res, err := s.cloud.Redeem(ctx, base, s.redemptionRequest(sp.Name, r.Token, r.LinkSecret, expectOf(sp)))
	var ref *cloud.Refusal
	switch {
	case err == nil:
		if _, err := s.store.Activate(wctx, sp.ID, res.Link.ID, retryActor); err != nil {
			log.Error("activate retried import", "err", err)
			return
		}
		log.Info("pending import confirmed by Cloud", "link", res.Link.ID, "replay", !res.Created)
		return
	case errors.As(err, &ref) && ref.Final():
		// After an earlier attempt without an answer, a refusal does not
		// prove Cloud holds no link (cloud-app answers an exact replay with
		// its link even after expiry, but an older cloud-app may not), so
		// the row is kept as FAILED: removing it ends any such link with the
		// link secret.
		log.Warn("pending import refused by Cloud", "code", ref.Code)
		msg := apperr.As(s.cloudError(nil, ref)).Message
		if err := s.store.Fail(wctx, sp.ID, retryActor, msg); err != nil && !errors.Is(err, store.ErrConflict) {
			log.Error("mark import failed", "err", err)
		}
		return
	}
	now := s.cfg.Now()
	if !sp.TokenExpiresAt.IsZero() && now.After(sp.TokenExpiresAt.Add(s.cfg.Retry.GiveUp)) {
		log.Warn("giving up on a pending import: its token expired long ago", "err", err)
		if err := s.store.Fail(wctx, sp.ID, retryActor, "Confluence Cloud never confirmed this import before its token expired. Remove it, then ask the source space admin for a new token."); err != nil && !errors.Is(err, store.ErrConflict) {
			log.Error("mark import failed", "err", err)
		}
		return
	}
	log.Info("still no definite answer from Cloud; will retry", "err", err)
	if err := s.store.Postpone(wctx, sp.ID, sp.Attempts, s.nextAttempt(sp.Attempts)); err != nil {
		log.Error("postpone pending import", "err", err)
	}
}

func expectOf(sp store.SyncedSpace) protocol.Expect {
	return protocol.Expect{SiteBaseURL: sp.SiteBaseURL, SpaceID: sp.SpaceID, SyncID: sp.SyncID}
}
