package recsink

import (
	"encoding/json"
)

// IAMPolicy returns the least-privilege IAM policy for recordings into bucket
// under prefix, as indented JSON ready to paste into AWS: only the actions
// recsink uses (writes, multipart, the check's probe and its delete, the
// HeadObject after completion, deletes of recordings).
func IAMPolicy(bucket, prefix string) []byte {
	objects := "arn:aws:s3:::" + bucket + "/*"
	if prefix != "" {
		objects = "arn:aws:s3:::" + bucket + "/" + prefix + "/*"
	}
	type statement struct {
		Sid       string         `json:"Sid"`
		Effect    string         `json:"Effect"`
		Action    []string       `json:"Action"`
		Resource  []string       `json:"Resource"`
		Condition map[string]any `json:"Condition,omitempty"`
	}
	doc := struct {
		Version   string      `json:"Version"`
		Statement []statement `json:"Statement"`
	}{
		Version: "2012-10-17",
		Statement: []statement{
			{
				Sid:      "RecsinkBucket",
				Effect:   "Allow",
				Action:   []string{"s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"},
				Resource: []string{"arn:aws:s3:::" + bucket},
			},
			{
				Sid:    "RecsinkObjects",
				Effect: "Allow",
				Action: []string{"s3:PutObject", "s3:GetObject", "s3:DeleteObject",
					"s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"},
				Resource: []string{objects},
			},
		},
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return b
}
