package mediarelay

// Name is the side in lower case ("a" or "b"), as the admin API, the
// metrics and the call's end reasons (bye_a) spell it. String is the
// upper-case form for logs.
func (s Side) Name() string {
	if s == SideA {
		return "a"
	}
	return "b"
}
