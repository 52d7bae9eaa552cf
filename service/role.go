package service

import "github.com/recsink/recsink"

// roleSubject returns key with, for a role, the subject of the identity
// token recsink presents for the organization: a role is always assumed as
// the organization that saved it, whatever the caller put in the key.
func roleSubject(orgID string, key recsink.AccessKey) recsink.AccessKey {
	if recsink.IsRoleARN(key.ID) {
		key.Subject = recsink.OrganizationSubject(orgID)
	} else {
		key.Subject = ""
	}
	return key
}
