package confluencesim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// persistedState is what StateFile keeps between runs.
type persistedState struct {
	ClientKey     string `json:"clientKey"`
	SharedSecret  string `json:"sharedSecret"`
	PrivateKeyPEM string `json:"privateKeyPem,omitempty"`
	Installed     bool   `json:"installed"`
	Enabled       bool   `json:"enabled"`
	// EverInstalled makes a reinstall after an uninstall get a new secret.
	EverInstalled bool            `json:"everInstalled"`
	Descriptor    json.RawMessage `json:"descriptor,omitempty"`
}

func readState(path string) (persistedState, error) {
	var ps persistedState
	if path == "" {
		return ps, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ps, nil
	}
	if err != nil {
		return ps, fmt.Errorf("confluencesim: read state: %w", err)
	}
	if err := json.Unmarshal(b, &ps); err != nil {
		return ps, fmt.Errorf("confluencesim: state file %s is not valid JSON: %w", path, err)
	}
	return ps, nil
}

// writeState replaces the state file atomically.
func writeState(path string, ps persistedState) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(ps, "", "  ")
	if err != nil {
		return fmt.Errorf("confluencesim: encode state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".confluencesim-state-*")
	if err != nil {
		return fmt.Errorf("confluencesim: write state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("confluencesim: write state: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("confluencesim: write state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("confluencesim: write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("confluencesim: write state: %w", err)
	}
	return nil
}

// saveLocked writes the current state; the caller holds s.mu.
func (s *Sim) saveLocked() error {
	return writeState(s.cfg.StateFile, s.st)
}
