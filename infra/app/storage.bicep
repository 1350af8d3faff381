// Storage for the host (deployment blobs, host locks), the sync queue and the state tables.
// Shared keys are off: everything goes through the managed identity (rbac.bicep).
@description('Storage account name (3-24 lowercase letters and digits).')
param name string
@description('Region.')
param location string
@description('Resource tags.')
param tags object

var deploymentContainerName = 'app-package'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled'
  }
  resource blob 'blobServices' = {
    name: 'default'
    resource deployment 'containers' = { name: deploymentContainerName }
  }
  resource queue 'queueServices' = {
    name: 'default'
    resource sync 'queues' = { name: 'sync-mailbox' }
    resource poison 'queues' = { name: 'sync-mailbox-poison' }
  }
  resource table 'tableServices' = { name: 'default' }
}

output name string = account.name
output deploymentContainerName string = deploymentContainerName
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
