// TEMPORARY: replaced by the lead with the real CLI wiring.
package main

func main() {}
