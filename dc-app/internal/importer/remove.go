package importer

import (
	"context"
	"errors"
	"time"

	"spacesync.io/dc-app/internal/cloud"
	"spacesync.io/dc-app/internal/store"
	"spacesync.io/shared/apperr"
)

// Remove ends a synced space: it unlinks it on the Cloud side with its link
// secret (DELETE /api/v1/links/self), then deletes the row and records who
// did it. Deleting rather than marking the row UNLINKED keeps the list to
// what is paired; the audit log keeps the history, and the Cloud sync,
// back to NOT SYNC YET, can be paired again with a new token. UNLINKED is
// left for links found ended on the Cloud side.
//
// A PENDING import is first settled: its redemption is repeated once (so a
// redemption still in the network cannot create a link after the unlink),
// then any link is ended. If Cloud cannot be reached the row stays and the
// error says so (cloud_unreachable); while another attempt is running the
// answer is rate_limited. A row whose cloud-app is no longer trusted is
// only deleted here: dc-app never calls an untrusted URL.
func (s *Service) Remove(ctx context.Context, id, actor string) error {
	ctx = context.WithoutCancel(ctx)
	sp, err := s.store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound()
	}
	if err != nil {
		return err
	}
	base, trusted := s.trustedCloud(sp.CloudURL)
	if !trusted || sp.Status == store.StatusUnlinked {
		if !trusted {
			s.log.Warn("removing a synced space of a cloud-app that is no longer trusted; it is not unlinked on Cloud", "synced_space", id, "cloud", sp.CloudURL)
		}
		return s.deleteRow(ctx, id, actor)
	}
	if sp.Status == store.StatusPending {
		if err := s.settleForRemoval(ctx, sp); err != nil {
			return err
		}
	}
	secret, err := s.store.LinkSecret(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound()
	}
	if err != nil {
		// Sealed with another DC_APP_SECRET_KEY: the link can never be
		// ended from here, and the row is useless.
		s.log.Warn("removing a synced space whose link secret cannot be read; it is not unlinked on Cloud", "synced_space", id, "err", err)
		return s.deleteRow(ctx, id, actor)
	}
	switch err := s.cloud.Unlink(ctx, base, secret); {
	case err == nil, errors.Is(err, cloud.ErrNoLink):
		return s.deleteRow(ctx, id, actor)
	default:
		s.log.Warn("unlink on Cloud failed; the synced space is kept", "synced_space", id, "err", err)
		return apperr.Wrap(err, apperr.CloudUnreachable,
			"Could not unlink this space on Confluence Cloud ("+base.String()+"), so it was not removed. Check this server's network, then try again.")
	}
}

// settleForRemoval repeats a PENDING import's redemption once so that its
// outcome is known before the unlink. On success the row is LINKED, on a
// definite refusal FAILED; either way the caller unlinks next.
func (s *Service) settleForRemoval(ctx context.Context, sp store.SyncedSpace) error {
	r, err := s.store.Claim(ctx, sp.ID, s.cfg.Retry.Lease)
	switch {
	case errors.Is(err, store.ErrBusy):
		return &apperr.Error{Code: apperr.RateLimited, RetryAfter: 30,
			Message: "This import is being confirmed with Confluence Cloud right now. Try again in a minute."}
	case errors.Is(err, store.ErrConflict):
		return nil // settled meanwhile: LINKED or FAILED, unlink as usual
	case errors.Is(err, store.ErrNotFound):
		return errNotFound()
	case err != nil:
		return err
	}
	base, _ := s.trustedCloud(sp.CloudURL)
	res, rerr := s.cloud.Redeem(ctx, base, s.redemptionRequest(sp.Name, r.Token, r.LinkSecret, expectOf(sp)))
	var ref *cloud.Refusal
	switch {
	case rerr == nil:
		_, err := s.store.Activate(ctx, sp.ID, res.Link.ID, retryActor)
		return err
	case errors.As(rerr, &ref) && ref.Final():
		err := s.store.Fail(ctx, sp.ID, retryActor, apperr.As(s.cloudError(nil, ref)).Message)
		if errors.Is(err, store.ErrConflict) {
			return nil
		}
		return err
	}
	if err := s.store.Postpone(ctx, sp.ID, r.Space.Attempts, s.cfg.Now().Add(time.Second)); err != nil {
		return err
	}
	return apperr.Wrap(rerr, apperr.CloudUnreachable,
		"Could not confirm this import with Confluence Cloud ("+base.String()+"), so it was not removed; it stays waiting for Cloud confirmation. Try again later.")
}

func (s *Service) deleteRow(ctx context.Context, id, actor string) error {
	err := s.store.Delete(ctx, id, actor)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound()
	}
	return err
}

func errNotFound() *apperr.Error {
	return apperr.New(apperr.NotFound, "There is no such synced space. It may have been removed already; reload the page.")
}
