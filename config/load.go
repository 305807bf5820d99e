package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load builds the configuration from, lowest precedence first: the
// built-in defaults, the profile's defaults, the YAML file at path (none
// when path is ""), and the GATEWAYQ_* variables in environ (normally
// os.Environ()). The profile is the file's "profile" key, overridden by
// GATEWAYQ_PROFILE. It then reads oauth.client_secret_file,
// tokens.encryption_key_file and monitoring.password_file, after checking
// their permissions.
//
// Load reports every problem it finds at once, joined: unknown YAML keys
// and GATEWAYQ_* variables (typos must not pass silently), values of the
// wrong type, unreadable secret files. It does not validate the values:
// call ValidateFor (or Validate) next, with the role of the binary.
func Load(path string, environ []string) (*Config, error) {
	var data []byte
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		data = b
	}
	c, err := parse(data, environ)
	if err != nil {
		if path != "" {
			return nil, fmt.Errorf("config %s:\n%w", path, err)
		}
		return nil, err
	}
	if err := c.LoadSecrets(); err != nil {
		return nil, err
	}
	return c, nil
}

// parse is Load without the file system: defaults, YAML, environment.
func parse(data []byte, environ []string) (*Config, error) {
	root, err := parseYAML(data)
	if err != nil {
		return nil, err
	}

	profile := ProfileSandbox
	if p, err := fileProfile(root); err != nil {
		return nil, err
	} else if p != "" {
		profile = p
	}
	if p, ok := lookupEnv(environ, envPrefix+"PROFILE"); ok && p != "" {
		profile = Profile(p)
		if !profile.Valid() {
			return nil, &FieldError{Field: envPrefix + "PROFILE", Err: unknownProfileError(profile)}
		}
	}
	if !profile.Valid() {
		return nil, &FieldError{Field: "profile", Err: unknownProfileError(profile)}
	}

	c := defaults(profile)
	var es errs
	if root != nil {
		decodeInto(root, reflect.ValueOf(c).Elem(), nil, &es)
	}
	if err := applyEnv(c, environ); err != nil {
		es = append(es, err)
	}
	if len(es) > 0 {
		return nil, es.join()
	}
	c.finish()
	return c, nil
}

// parseYAML returns the root mapping of a one-document YAML file, or nil
// for an empty file.
func parseYAML(data []byte) (*yaml.Node, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // only comments
		}
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document (a line with only --- ?)")
	}
	root := resolve(&doc)
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, nil
		}
		root = resolve(root.Content[0])
	}
	if isNull(root) {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the file must be a mapping of settings, not %s", root.Line, kindName(root))
	}
	return root, nil
}

// fileProfile returns the root mapping's "profile" value, "" if absent.
func fileProfile(root *yaml.Node) (Profile, error) {
	if root == nil {
		return "", nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "profile" {
			continue
		}
		v := resolve(root.Content[i+1])
		if isNull(v) {
			return "", nil
		}
		if v.Kind != yaml.ScalarNode {
			return "", &FieldError{Field: "profile", Err: fmt.Errorf("line %d: want a string, got %s", v.Line, kindName(v))}
		}
		return Profile(v.Value), nil
	}
	return "", nil
}

// decodeInto applies mapping node n onto struct v, key by key. Doing the
// walk ourselves, rather than decoding with yaml's KnownFields(true), is
// what lets every error name its YAML path (yaml names Go types) and lets
// one run report every bad key instead of the first.
func decodeInto(n *yaml.Node, v reflect.Value, path []string, es *errs) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		es.add(strings.Join(path, "."), fmt.Errorf("line %d: want a mapping of settings, got %s", n.Line, kindName(n)))
		return
	}
	t := v.Type()
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolve(n.Content[i]), n.Content[i+1]
		key := kn.Value
		p := append(path[:len(path):len(path)], key)
		field := strings.Join(p, ".")
		if kn.Kind != yaml.ScalarNode {
			es.add(strings.Join(path, "."), fmt.Errorf("line %d: keys must be plain names", kn.Line))
			continue
		}
		if line, dup := seen[key]; dup {
			es.add(field, fmt.Errorf("line %d: key given twice (first on line %d)", kn.Line, line))
			continue
		}
		seen[key] = kn.Line
		idx, ok := fieldByYAML(t, key)
		if !ok {
			err := fmt.Errorf("line %d: %w", kn.Line, ErrUnknownKey)
			if s := suggest(key, yamlKeys(t)); s != "" {
				err = fmt.Errorf("line %d: %w (did you mean %s?)", kn.Line, ErrUnknownKey, s)
			}
			es.add(field, err)
			continue
		}
		fv := v.Field(idx)
		if !isLeaf(fv.Type()) {
			decodeInto(vn, fv, p, es)
			continue
		}
		vn = resolve(vn)
		if isNull(vn) {
			// "key:" with no value keeps the lower layer's value, as an
			// empty environment variable does.
			continue
		}
		// Decode into a fresh value so that a map replaces the default
		// rather than merging into it, and a failed decode leaves the
		// lower layer's value untouched.
		nv := reflect.New(fv.Type())
		if err := vn.Decode(nv.Interface()); err != nil {
			es.add(field, yamlError(err))
			continue
		}
		fv.Set(nv.Elem())
	}
}

// yamlError flattens a *yaml.TypeError (which lists its causes on
// several lines) into one line.
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return errors.New(strings.Join(te.Errors, "; "))
	}
	return err
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

// LoadSecrets reads oauth.client_secret_file into oauth.client_secret,
// tokens.encryption_key_file into tokens.encryption_key,
// monitoring.password_file into monitoring.password and
// ingest.api_keys_file into ingest.api_keys (white space trimmed),
// refusing files that group or others can read. Setting a secret both
// directly and by file is an error. Load calls it; call it yourself
// only for a Config built in code. Secrets already read are not read again.
func (c *Config) LoadSecrets() error {
	var es errs
	load := func(fileField, valueField, path string, value *string, fromFile *string) {
		if path == "" {
			return
		}
		if *value != "" && *fromFile != path {
			es.add(valueField, fmt.Errorf("set both directly (or by %s) and by %s; choose one", EnvName(valueField), fileField))
			return
		}
		if *fromFile == path {
			return
		}
		if err := CheckKeyFile(fileField, path); err != nil {
			es = append(es, err)
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			es.add(fileField, err)
			return
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			es.add(fileField, fmt.Errorf("%s is empty", path))
			return
		}
		*value = s
		*fromFile = path
	}
	load("oauth.client_secret_file", "oauth.client_secret", c.OAuth.ClientSecretFile, &c.OAuth.ClientSecret, &c.OAuth.secretFrom)
	load("tokens.encryption_key_file", "tokens.encryption_key", c.Tokens.EncryptionKeyFile, &c.Tokens.EncryptionKey, &c.Tokens.keyFrom)
	load("monitoring.password_file", "monitoring.password", c.Monitoring.PasswordFile, &c.Monitoring.Password, &c.Monitoring.passwordFrom)
	load("ingest.api_keys_file", "ingest.api_keys", c.Ingest.APIKeysFile, &c.Ingest.APIKeys, &c.Ingest.keysFrom)
	return es.join()
}
