package client

import (
	"context"
	"net/http"

	"github.com/creditgate/creditgate/admin"
)

// UpdateAccount changes account's settings (PATCH /admin/v1/accounts/{id}):
// the fields of u that are set, each booked in the ledger with this token's
// name. It answers the account as it is afterwards and the events booked.
func (c *Client) UpdateAccount(ctx context.Context, account string, u admin.UpdateAccountRequest) (admin.AccountUpdate, error) {
	path, err := accountPath(account, "")
	if err != nil {
		return admin.AccountUpdate{}, err
	}
	var out admin.AccountUpdate
	_, err = c.do(ctx, http.MethodPatch, path, nil, nil, u, &out)
	return out, err
}

// WhoAmI says which token this client holds and what it may do.
func (c *Client) WhoAmI(ctx context.Context) (admin.WhoAmI, error) {
	var out admin.WhoAmI
	_, err := c.do(ctx, http.MethodGet, "/admin/v1/whoami", nil, nil, nil, &out)
	return out, err
}
