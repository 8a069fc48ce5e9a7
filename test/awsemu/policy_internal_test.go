package awsemu

import "testing"

// IAM takes condition values as JSON booleans and numbers too ("Bool": {"k": true}): a
// policy written so must parse and be evaluated, not refuse every request.
func TestPolicyConditionValuesMayBeBooleans(t *testing.T) {
	doc, err := parsePolicy([]byte(`{"Version":"2012-10-17","Statement":[{"Sid":"Grants","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:role/driver"},` +
		`"Action":"kms:CreateGrant","Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":true}}},` +
		`{"Sid":"Numbers","Effect":"Deny","Principal":"*","Action":"kms:Encrypt","Resource":"*","Condition":{"NumericLessThanEquals":{"kms:Size":[1,2]}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req := authzRequest{principal: principal{account: "000000000000", arn: "arn:aws:iam::000000000000:role/driver"}, action: "kms:CreateGrant", resource: "*",
		context: map[string]string{"kms:GrantIsForAWSResource": "true"}}
	if got := doc.evaluate(req); got != allowed {
		t.Errorf("Bool condition true: decision %v, want allowed", got)
	}
	if got := doc.Statement[1].Condition["NumericLessThanEquals"]["kms:Size"]; len(got) != 2 || got[0] != "1" {
		t.Errorf("numbers parsed as %v", got)
	}
}
