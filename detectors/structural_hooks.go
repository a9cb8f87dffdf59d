package detectors

// This file is the only place that calls the structural validators, so that
// their API can change without touching the engine.

import "github.com/imgaudit/imgaudit/detectors/structural"

type keyInfo = structural.KeyInfo

// memoryKeySearch is the AES key-schedule and DER RSA key search, run a
// window at a time.
type memoryKeySearch = structural.MemoryKeySearch

func unescapeArmored(b []byte) []byte              { return structural.UnescapeArmored(b) }
func parsePrivateKeyPEM(b []byte) (keyInfo, error) { return structural.ParsePrivateKeyPEM(b) }
func parsePPK(b []byte) (keyInfo, error)           { return structural.ParsePPK(b) }
func parsePGPPrivate(b []byte) (keyInfo, error)    { return structural.ParsePGPPrivate(b) }
func parseKeytab(b []byte) (int, []string, error)  { return structural.ParseKeytab(b) }
func githubTokenValid(tok string) bool             { return structural.GitHubClassicTokenValid(tok) }
func jwtValid(tok string) bool                     { return structural.JWTValid(tok) }
