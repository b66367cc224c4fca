// The files store of the app (lib/files.ts): its own storage account, apart from the Functions host's, so
// the app's identity holds data-plane rights on documents only and the immutability policy covers them
// alone. Two containers: `files`, and `retained` for signed agreements, under a time-based immutability
// (WORM) policy as long as their retention, so nobody — the app, an operator or an attacker with the
// identity — can change or delete a sealed agreement before it ends. Every object is encrypted by the app
// before upload (AES-256-GCM, PII_ENCRYPTION_KEYS), on top of Azure's encryption at rest.
@description('3-24 lowercase letters and digits.')
param name string
param location string
param tags object = {}

@description('Object id of the app\'s managed identity.')
param identityPrincipalId string

@description('Days a sealed agreement cannot be changed or deleted (five years: 1826). Lock the policy once agreed (infra/README.md).')
@minValue(1)
param retainedDays int = 1826

@description('Days a deleted blob or container can be restored.')
param softDeleteDays int = 30

// Storage Blob Data Contributor: read, write and delete blobs; no account keys, no role management.
var blobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_ZRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // the managed identity only: no account key or SAS can reach the documents
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: softDeleteDays }
    containerDeleteRetentionPolicy: { enabled: true, days: softDeleteDays }
  }
}

resource filesContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'files'
  properties: { publicAccess: 'None' }
}

resource retainedContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'retained'
  properties: { publicAccess: 'None' }
}

// Time-based retention from each blob's creation: writes of new blobs are allowed, changes and deletes
// are refused until the period ends. Created unlocked (it can still be shortened); locking is an
// operator's deliberate, irreversible step.
resource retainedImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = {
  parent: retainedContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: retainedDays
    allowProtectedAppendWrites: false
  }
}

resource appBlobAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, identityPrincipalId, blobDataContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributor)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output name string = account.name
@description('BLOB_ENDPOINT of the app.')
output blobEndpoint string = account.properties.primaryEndpoints.blob
