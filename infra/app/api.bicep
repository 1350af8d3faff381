// The function app on Flex Consumption (Node 22), running as the user-assigned identity.
// App settings match src/config.ts exactly, and siteConfig carries only what Flex accepts
// (test/infra checks both on the compiled ARM JSON). Flex moved runtime, scale and deployment
// into functionAppConfig and refuses the old siteConfig/app-setting equivalents
// (https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations).
@description('Function app name.')
param name string
@description('Flex Consumption plan name.')
param planName string
@description('Region.')
param location string
@description('Resource tags (the app adds azd-service-name; the plan must not carry it).')
param tags object
@description('User-assigned managed identity the app runs as.')
param identityName string
@description('Storage account for the host, the queue and the state tables.')
param storageAccountName string
@description('Blob container holding the deployment package.')
param deploymentContainerName string
@description('Application Insights connection string (identifies the resource; local auth is off).')
param appInsightsConnectionString string
@description('Key Vault URI holding the secrets referenced below.')
param keyVaultUri string
@description('Application (client) id of the multi-tenant app registration.')
param appClientId string
@description('Public https base URL for Graph notification URLs.')
param publicBaseUrl string
@description('Scale-out limit.')
param maximumInstanceCount int
@description('Always-ready instances of the HTTP group.')
param alwaysReadyHttpInstances int
@description('Shards of the timers\' fan-out (UMC_SCHEDULE_SHARDS).')
param scheduleShards int
@description('Subnet for VNet integration (network.bicep output appSubnetId); empty: no VNet integration.')
param virtualNetworkSubnetId string = ''

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = { name: storageAccountName }
resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = { name: identityName }
var identityId = identity.id
var identityClientId = identity.properties.clientId

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${identityId}': {} } }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Flex Consumption sends all outbound traffic through the integrated subnet (and so through
    // its NAT gateway) once this is set (https://learn.microsoft.com/azure/azure-functions/flex-consumption-how-to#enable-virtual-network-integration).
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    keyVaultReferenceIdentity: identityId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identityId }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
        // 'http' is the group of all HTTP functions (https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan#always-ready-instances).
        alwaysReady: alwaysReadyHttpInstances > 0 ? [ { name: 'http', instanceCount: alwaysReadyHttpInstances } ] : []
      }
      // Azure Functions support for Node 20 ended on 30 April 2026.
      runtime: { name: 'node', version: '22' }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      appSettings: [
        // Host storage and the sync-mailbox queue trigger (connection AzureWebJobsStorage) through
        // the managed identity: identity-based connections
        // (https://learn.microsoft.com/azure/azure-functions/functions-reference#configure-an-identity-based-connection).
        { name: 'AzureWebJobsStorage__blobServiceUri', value: storage.properties.primaryEndpoints.blob }
        { name: 'AzureWebJobsStorage__queueServiceUri', value: storage.properties.primaryEndpoints.queue }
        { name: 'AzureWebJobsStorage__tableServiceUri', value: storage.properties.primaryEndpoints.table }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsightsConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
        // src/config.ts
        { name: 'UMC_ENVIRONMENT', value: 'azure' }
        { name: 'UMC_TABLE_SERVICE_URI', value: storage.properties.primaryEndpoints.table }
        { name: 'UMC_QUEUE_SERVICE_URI', value: storage.properties.primaryEndpoints.queue }
        { name: 'UMC_SYNC_QUEUE', value: 'sync-mailbox' }
        { name: 'UMC_CLIENT_ID', value: appClientId }
        { name: 'UMC_MANAGED_IDENTITY_CLIENT_ID', value: identityClientId }
        { name: 'UMC_PUBLIC_BASE_URL', value: publicBaseUrl }
        { name: 'UMC_KEY_VAULT_URI', value: keyVaultUri }
        { name: 'UMC_WEBHOOK_SECRET', value: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/umc-webhook-secret/)' }
        // The admin API takes Entra tokens of this tenant with the Umconnect.Admin app role (src/admin/adminAuth.ts).
        { name: 'UMC_ADMIN_TENANT_ID', value: tenant().tenantId }
        { name: 'UMC_LOG_LEVEL', value: 'info' }
        { name: 'UMC_SCHEDULE_SHARDS', value: string(scheduleShards) }
      ]
    }
  }
}

// FTP and SCM basic-auth publishing off (Flex refuses siteConfig.ftpsState); azd deploys with Entra.
resource ftp 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: { allow: false }
}

resource scm 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: { allow: false }
}

output name string = app.name
output uri string = 'https://${app.properties.defaultHostName}'
