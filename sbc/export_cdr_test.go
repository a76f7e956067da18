package sbc

// Q850Cause exports q850Cause to the tests.
var Q850Cause = q850Cause
