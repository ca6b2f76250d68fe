package db_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"gorm.io/gorm"

	"spacesync.io/shared/db"
	"spacesync.io/shared/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

var migrations = os.DirFS("testdata/migrations")

type thing struct {
	ID        string
	Name      string
	Active    bool
	CreatedAt time.Time
}

func TestDB_MigrateAndDuplicates(t *testing.T) {
	dbtest.Each(t, migrations, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		if err := d.Ready(ctx); err != nil {
			t.Fatalf("Ready: %v", err)
		}
		now := time.Date(2026, 12, 3, 10, 0, 0, 123000000, time.UTC)
		if err := d.Create(&thing{ID: "a", Name: "x", CreatedAt: now}).Error; err != nil {
			t.Fatalf("create: %v", err)
		}
		err := d.Create(&thing{ID: "b", Name: "x", CreatedAt: now}).Error
		if !errors.Is(err, gorm.ErrDuplicatedKey) {
			t.Fatalf("duplicate name: got %v, want gorm.ErrDuplicatedKey", err)
		}
		var got thing
		if err := d.First(&got, "id = ?", "a").Error; err != nil {
			t.Fatal(err)
		}
		if !got.CreatedAt.Equal(now) {
			t.Errorf("created_at round trip: got %v, want %v", got.CreatedAt, now)
		}
	})
}

func TestDB_ReadyDetectsSchemaBehind(t *testing.T) {
	dbtest.Each(t, migrations, func(t *testing.T, d *db.DB) {
		newer := fstest.MapFS{}
		entries, _ := os.ReadDir("testdata/migrations")
		for _, e := range entries {
			b, _ := os.ReadFile("testdata/migrations/" + e.Name())
			newer[e.Name()] = &fstest.MapFile{Data: b}
		}
		newer["00002_more.sql"] = &fstest.MapFile{Data: []byte("-- +goose Up\nCREATE TABLE more (id TEXT PRIMARY KEY);\n-- +goose Down\nDROP TABLE more;\n")}
		ahead, err := db.Wrap(d.DB, d.Dialect, newer)
		if err != nil {
			t.Fatal(err)
		}
		if err := ahead.Ready(context.Background()); err == nil {
			t.Fatal("Ready with a pending migration: got nil, want an error")
		}
		if err := ahead.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := ahead.Ready(context.Background()); err != nil {
			t.Fatalf("Ready after migrating: %v", err)
		}
	})
}

// TestDB_TxConcurrentConditionalUpdate checks that of many concurrent
// transactions flipping the same row by a conditional update, exactly one
// sees a row affected, on both databases.
func TestDB_TxConcurrentConditionalUpdate(t *testing.T) {
	dbtest.Each(t, migrations, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		if err := d.Create(&thing{ID: "a", Name: "x", CreatedAt: time.Now().UTC()}).Error; err != nil {
			t.Fatal(err)
		}
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins int
		)
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := d.Tx(ctx, func(tx *gorm.DB) error {
					res := tx.Model(&thing{}).Where("id = ? AND active = ?", "a", false).Update("active", true)
					if res.Error != nil {
						return res.Error
					}
					if res.RowsAffected == 1 {
						mu.Lock()
						wins++
						mu.Unlock()
					}
					return nil
				})
				if err != nil {
					t.Errorf("tx: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("winners: got %d, want 1", wins)
		}
	})
}

func TestDB_ReadyWhenServerStops(t *testing.T) {
	c, err := dbtest.StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Remove()
	ctx := context.Background()
	d, err := db.Open(ctx, db.Options{URL: c.URL("postgres"), Migrations: migrations})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	err = d.Ready(ctx)
	if err == nil {
		t.Fatal("Ready with the server stopped: got nil, want an error")
	}
	if !db.Unavailable(err) {
		t.Errorf("Unavailable(%v) = false, want true", err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for d.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Ready did not recover: %v", d.Ready(ctx))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
