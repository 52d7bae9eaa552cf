package s3

// PublicOnlyControl exposes the dialer guard of AWS destinations to tests.
var PublicOnlyControl = publicOnlyControl
