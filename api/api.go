// Package api holds the admin API's JSON wire types: what sbcd's handlers
// write under /api/v1 and what sbcctl (and the dashboard) read. It imports
// nothing of the project, so a client links only this package and the
// standard library; the packages that own the state (sbc, mediarelay,
// policy, ha) keep their own types and sbcd converts at the handler.
package api
