package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
	"golang.org/x/term"
)

// ServerDefault is the server the task commands call when neither a flag,
// the environment nor a profile names one.
const ServerDefault = "http://localhost:8080"

// ProfilesFile is the name of the profile file in the configuration
// directory ($COMMONOPS_CONFIG_DIR, else $XDG_CONFIG_HOME/commonops, else
// ~/.config/commonops).
const ProfilesFile = "profiles.yaml"

// profile is who the task commands call and as whom.
type profile struct {
	Server string `yaml:"server"`
	Token  string `yaml:"token"`
	Tenant string `yaml:"tenant"`
}

// profiles is the profile file:
//
//	default: prod            # used without --profile or COMMONOPS_PROFILE
//	profiles:
//	  prod: {server: https://ops.example.com, token: ...}
//	  local: {server: http://localhost:8080, tenant: acme}
type profiles struct {
	Default  string             `yaml:"default"`
	Profiles map[string]profile `yaml:"profiles"`
}

// identityFlags are the flags every task command takes for its identity;
// empty means not given.
type identityFlags struct {
	server, token, tenant, profile string
}

func (f *identityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.server, "server", "", "base URL of the commonops server (env COMMONOPS_SERVER; default "+ServerDefault+")")
	fs.StringVar(&f.token, "token", "", "API key or bearer token (env COMMONOPS_TOKEN)")
	fs.StringVar(&f.tenant, "tenant", "", "tenant to act in, sent as X-Tenant-Id (env COMMONOPS_TENANT)")
	fs.StringVar(&f.profile, "profile", "", "profile of "+ProfilesFile+" to use (env COMMONOPS_PROFILE)")
}

// resolve settles each of server, token and tenant: a flag, else the
// environment, else the profile, else the default.
func (f identityFlags) resolve(getenv func(string) string) (profile, error) {
	p, err := loadProfile(f.profile, getenv)
	if err != nil {
		return profile{}, err
	}
	pick := func(flagValue, env, fromProfile, def string) string {
		for _, v := range []string{flagValue, getenv(env), fromProfile} {
			if v != "" {
				return v
			}
		}
		return def
	}
	return profile{
		Server: pick(f.server, "COMMONOPS_SERVER", p.Server, ServerDefault),
		Token:  pick(f.token, "COMMONOPS_TOKEN", p.Token, ""),
		Tenant: pick(f.tenant, "COMMONOPS_TENANT", p.Tenant, ""),
	}, nil
}

// configDir is where the profile file lives.
func configDir(getenv func(string) string) string {
	if d := getenv("COMMONOPS_CONFIG_DIR"); d != "" {
		return d
	}
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "commonops")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "commonops")
	}
	return ""
}

// loadProfile returns the named profile (flag, else COMMONOPS_PROFILE, else
// the file's default). No file and no name is no profile; a name the file
// lacks is an error.
func loadProfile(name string, getenv func(string) string) (profile, error) {
	if name == "" {
		name = getenv("COMMONOPS_PROFILE")
	}
	dir := configDir(getenv)
	if dir == "" {
		if name != "" {
			return profile{}, fmt.Errorf("profile %q: no configuration directory (set COMMONOPS_CONFIG_DIR or HOME)", name)
		}
		return profile{}, nil
	}
	path := filepath.Join(dir, ProfilesFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && name == "" {
		return profile{}, nil
	}
	if err != nil {
		return profile{}, fmt.Errorf("profile %q: %w", name, err)
	}
	var ps profiles
	if err := yaml.Unmarshal(b, &ps); err != nil {
		return profile{}, fmt.Errorf("read %s: %w", path, err)
	}
	if name == "" {
		name = ps.Default
	}
	if name == "" {
		return profile{}, nil
	}
	p, ok := ps.Profiles[name]
	if !ok {
		return profile{}, fmt.Errorf("profile %q is not in %s", name, path)
	}
	return p, nil
}

// isTerminal reports whether w is a terminal: bars, colour and the table
// default are for people, JSON Lines for pipes and files.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
