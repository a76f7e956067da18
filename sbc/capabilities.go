package sbc

// What the SBC says it supports, per leg. The far side's Supported, Allow
// and Require never cross (topology.HeaderFilter.Pass refuses
// config.CapabilityHeaders), so a peer learns nothing of the other side's
// software from them and is never told of an extension the SBC does not
// run itself. Each option tag has exactly one owner, which adds it on the
// messages where it applies:
//
//   - 100rel: prack.go. Supported: 100rel on leg B's INVITE (offer100rel),
//     Require: 100rel with RSeq on leg A's reliable 18x (armReliableLocked).
//   - timer: sessiontimer.go. Supported: timer, Session-Expires and
//     Require: timer where RFC 4028 asks (uacHeaders, uasHeaders).
//   - replaces: nobody. REFER/Replaces (RFC 3891) is not handled, so it is
//     never advertised.
//
// Allow is this file's: the methods the B2BUA answers (allowed), on every
// leg, written by topology on INVITE and UPDATE and their 1xx/2xx
// (topology.Local.Allow, set by Realm.local), and on 405/501 and OPTIONS
// answers by the handlers in sbc.go.

// allowed is what the B2BUA accepts, for Allow headers. UPDATE is in it:
// the SBC takes an UPDATE on either leg (early media, session refresh).
const allowed = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, PRACK, INFO, MESSAGE, NOTIFY, REFER"

// optionsSupported is the Supported of the SBC's answer to OPTIONS: every
// tag some owner above may add on a leg of any realm.
const optionsSupported = "100rel, timer"
