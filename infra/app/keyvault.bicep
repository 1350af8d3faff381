// Voice-store super-user secrets and the webhook/HMAC secrets (created by the postprovision
// hook when missing, never by a template: a template value would rotate them on every run).
@description('Key Vault name.')
param name string
@description('Region.')
param location string
@description('Resource tags.')
param tags object
@description('default, or recover: restore this environment\'s soft-deleted vault with its secrets.')
@allowed([ 'default', 'recover' ])
param createMode string
@description('Purge protection (irreversible once on).')
param purgeProtection bool

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: { family: 'A', name: 'standard' }
    createMode: createMode
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    // Key Vault refuses an explicit false ("cannot be set to false"): off means absent.
    enablePurgeProtection: purgeProtection ? true : null
    publicNetworkAccess: 'Enabled'
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
