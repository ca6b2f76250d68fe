package load

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"spacesync.io/shared/secret"
	"spacesync.io/shared/token"
)

// The seed writes cloud-app's tables directly, in the shapes cloud-app's
// store writes them (cloud-app/internal/store: tenants.go, syncs.go,
// tokens.go; migrations/00001_init.sql):
//
//   - tenants: an enabled tenant per site, its Connect shared secret sealed
//     with CLOUD_APP_SECRET_KEY through secret.Box with the purpose
//     "cloud-app/tenant-shared-secret" and the clientKey as additional data;
//   - syncs: one NOT_SYNCED_YET sync per token, each for its own space, so
//     every redemption is of a fresh token of a fresh sync;
//   - tokens: one downloaded token per sync, minted with token.Mint and the
//     first key of SPACESYNC_TOKEN_KEYS, issued by cloud-app's base URL; the
//     row keeps the jti, the kid, the SHA-256 (hex) of the redemption secret
//     and the issue and expiry times from the claims, as tokens.Minter and
//     store.IssueToken do.

// seedIssuer is the account id the seeded syncs and tokens are issued by.
const seedIssuer = "loadgen:admin"

// Seeder seeds cloud-app's database.
type Seeder struct {
	conn      *pgx.Conn
	keys      *token.KeySet
	issuer    string
	secretKey secret.Key
	tenants   []SeedTenant
	next      int
}

// SeedTenant is a seeded (or installed) tenant.
type SeedTenant struct {
	ID, ClientKey, BaseURL string
}

// SeededToken is a minted token whose rows are in the database. Token is a
// bearer secret: the driver sends it and never prints it.
type SeededToken struct {
	Token   string
	Tenant  SeedTenant
	SyncID  string
	SpaceID string
}

// NewSeeder connects to cloud-app's database (after cloud-app has migrated
// it). issuer must be cloud-app's CLOUD_APP_BASE_URL as cloud-app prints
// it (its token.Opener checks iss exactly).
func NewSeeder(ctx context.Context, dbURL string, keys *token.KeySet, issuer string, key secret.Key) (*Seeder, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("seed: connect: %w", err)
	}
	return &Seeder{conn: conn, keys: keys, issuer: issuer, secretKey: key}, nil
}

// Close closes the connection.
func (s *Seeder) Close() { s.conn.Close(context.Background()) }

// AddTenants inserts n enabled tenants with random client keys and shared
// secrets; Tokens spreads its syncs over them.
func (s *Seeder) AddTenants(ctx context.Context, n int) error {
	box := secret.NewBox(s.secretKey, "cloud-app/tenant-shared-secret")
	now := time.Now().UTC()
	rows := make([][]any, 0, n)
	for i := range n {
		t := SeedTenant{
			ID: newUUID(), ClientKey: newUUID(),
			BaseURL: fmt.Sprintf("https://loadgen-%d-%s.atlassian.net/wiki", len(s.tenants)+i, randomHex(4)),
		}
		sealed := box.Seal([]byte(randomID(32)), []byte(t.ClientKey))
		rows = append(rows, []any{t.ID, t.ClientKey, t.BaseURL, "", "confluence", sealed, "enabled", int64(2), now, now})
		s.tenants = append(s.tenants, t)
	}
	_, err := s.conn.CopyFrom(ctx, pgx.Identifier{"tenants"},
		[]string{"id", "client_key", "base_url", "display_url", "product_type", "shared_secret_sealed", "state", "event_seq", "installed_at", "updated_at"},
		pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("seed tenants: %w", err)
	}
	return nil
}

// UseTenant adds an existing tenant (one the Confluence simulator
// installed) by its clientKey, and returns it.
func (s *Seeder) UseTenant(ctx context.Context, clientKey string) (SeedTenant, error) {
	t := SeedTenant{ClientKey: clientKey}
	err := s.conn.QueryRow(ctx, "SELECT id, base_url FROM tenants WHERE client_key = $1", clientKey).Scan(&t.ID, &t.BaseURL)
	if err != nil {
		return t, fmt.Errorf("seed: the installed tenant: %w", err)
	}
	return t, nil
}

// Space is a Confluence space a seeded sync belongs to.
type Space struct{ ID, Key, Name string }

// AddSyncs inserts n NOT_SYNCED_YET syncs of tenant t for space sp (for
// listing them), and returns their ids.
func (s *Seeder) AddSyncs(ctx context.Context, t SeedTenant, sp Space, n int) ([]string, error) {
	now := time.Now().UTC()
	rows := make([][]any, n)
	ids := make([]string, n)
	for i := range n {
		ids[i] = newUUID()
		rows[i] = []any{ids[i], t.ID, sp.ID, sp.Key, sp.Name, fmt.Sprintf("%s sync %d", sp.Name, i+1),
			seedPermissions, i%2 == 0, true, "NOT_SYNCED_YET", seedIssuer, now, now}
	}
	if _, err := s.conn.CopyFrom(ctx, pgx.Identifier{"syncs"}, syncColumns, pgx.CopyFromRows(rows)); err != nil {
		return nil, fmt.Errorf("seed syncs: %w", err)
	}
	return ids, nil
}

var syncColumns = []string{"id", "tenant_id", "space_id", "space_key", "space_name", "name", "permissions",
	"sync_comments", "sync_labels", "status", "created_by", "created_at", "updated_at"}

// seedPermissions is the permissions JSON of every seeded sync.
var seedPermissions = mustJSON([]token.Principal{
	{Type: token.PrincipalGroup, ID: "6d1f4c52-3b8e-4d0f-9a7c-1e2b3c4d5e01", Name: "confluence-admins"},
	{Type: token.PrincipalUser, ID: "557058:0b8f5a4e-6f5f-4b7e-9c1a-3d2e1f0a9b01", Name: "Ada Admin"},
})

// Tokens mints n tokens, each for a new sync of a new space, spread over
// the seeded tenants, and inserts their syncs and tokens rows.
func (s *Seeder) Tokens(ctx context.Context, n int) ([]SeededToken, error) {
	if len(s.tenants) == 0 {
		return nil, fmt.Errorf("seed: add tenants first")
	}
	now := time.Now().UTC()
	out := make([]SeededToken, n)
	syncRows := make([][]any, n)
	tokenRows := make([][]any, n)
	kid := s.keys.KeyIDs()[0]
	var perms []token.Principal
	_ = json.Unmarshal([]byte(seedPermissions), &perms)

	workers := runtime.NumCPU()
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				seq := s.next + i
				t := s.tenants[seq%len(s.tenants)]
				sp := Space{ID: fmt.Sprintf("%d", 9_000_000+seq), Key: fmt.Sprintf("LG%d", seq), Name: fmt.Sprintf("Load space %d", seq)}
				syncID := newUUID()
				c := token.NewClaims(s.issuer, now,
					token.Site{ClientKey: t.ClientKey, BaseURL: t.BaseURL},
					token.Space{ID: sp.ID, Key: sp.Key, Name: sp.Name},
					token.Sync{ID: syncID, Name: sp.Name, Permissions: perms, Comments: true, Labels: true},
					"Load test token: import it as it is.")
				tok, err := token.Mint(s.keys, c)
				if err != nil {
					errs[w] = err
					return
				}
				out[i] = SeededToken{Token: tok, Tenant: t, SyncID: syncID, SpaceID: sp.ID}
				syncRows[i] = []any{syncID, t.ID, sp.ID, sp.Key, sp.Name, sp.Name, seedPermissions, true, true,
					"NOT_SYNCED_YET", seedIssuer, now, now}
				sum := sha256.Sum256([]byte(c.RedemptionSecret))
				tokenRows[i] = []any{c.ID, t.ID, syncID, kid, hex.EncodeToString(sum[:]), "download", "", seedIssuer,
					c.IssuedAt.UTC(), c.Expiry.UTC()}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("seed: mint: %w", err)
		}
	}
	s.next += n
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"syncs"}, syncColumns, pgx.CopyFromRows(syncRows)); err != nil {
		return nil, fmt.Errorf("seed syncs: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"tokens"},
		[]string{"jti", "tenant_id", "sync_id", "kid", "rs_hash", "channel", "recipient", "issued_by", "issued_at", "expires_at"},
		pgx.CopyFromRows(tokenRows)); err != nil {
		return nil, fmt.Errorf("seed tokens: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	// Fresh statistics, as autovacuum would have after a while, so the
	// planner does not take a just-filled table for an empty one.
	if _, err := s.conn.Exec(ctx, "ANALYZE tenants, syncs, tokens"); err != nil {
		return nil, fmt.Errorf("seed: analyze: %w", err)
	}
	return out, nil
}

// Count returns SELECT count(*) of a query's table, for checking after a
// run that the writes happened.
func (s *Seeder) Count(ctx context.Context, query string) (int64, error) {
	var n int64
	err := s.conn.QueryRow(ctx, query).Scan(&n)
	return n, err
}

// newUUID is a random (version 4) UUID in its text form, as cloud-app's
// ids are.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// randomHex is n random bytes, hex (fit for a host name).
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// randomID is n random bytes, base64url.
func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
