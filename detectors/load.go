package detectors

import "slices"

// LoadRules returns the built-in rules plus those of each rules file (see
// LoadConfig), with the files' global allowlists and the rules they
// disable. An error names the file.
func LoadRules(files []string) (Config, error) {
	c := Config{Rules: Builtin()}
	for _, f := range files {
		extra, err := LoadConfig(f)
		if err != nil {
			return c, err
		}
		c.Rules = append(c.Rules, extra.Rules...)
		c.Allowlists = append(c.Allowlists, extra.Allowlists...)
		c.Disable = append(c.Disable, extra.Disable...)
	}
	return c, nil
}

// UnknownRule returns the first of ids that no rule of c has, and whether
// there is one.
func (c Config) UnknownRule(ids []string) (string, bool) {
	known := make(map[string]bool, len(c.Rules))
	for _, r := range c.Rules {
		known[r.ID] = true
	}
	for _, id := range ids {
		if !known[id] {
			return id, true
		}
	}
	return "", false
}

// NewEngine builds the engine of c's rules and allowlists, with the rules
// c disables and those in disable turned off.
func (c Config) NewEngine(disable []string, workers int) (*Engine, error) {
	return NewEngine(c.Rules, EngineOptions{Disable: slices.Concat(disable, c.Disable), Workers: workers, Allowlists: c.Allowlists})
}
